"""The background-job plumbing (addon/tasks.py) with its timer pumped by the test, as Blender's
event loop would: work on a worker thread, results delivered on the main thread only."""

import threading
import time

import pytest

from tests.addon.conftest import checkout_as_package


@pytest.fixture(scope="module")
def tasks():
    with checkout_as_package():
        from text_edit.addon import tasks

        yield tasks


def pump(runner, timers, timeout=10.0):
    """Call the registered timer like Blender does until it asks not to run again."""
    deadline = time.monotonic() + timeout
    callback = timers[-1]
    while time.monotonic() < deadline:
        if callback() is None:
            return
        time.sleep(0.01)
    raise AssertionError("the task did not finish")


def test_work_runs_off_the_main_thread_and_results_arrive_on_it(tasks):
    timers, seen = [], {}
    runner = tasks.Runner(register_timer=timers.append)
    release = threading.Event()

    def work(progress):
        seen["worker"] = threading.current_thread() is threading.main_thread()
        progress(0.5, "half way", 12.0)
        release.wait(5)
        return 42

    def done(value):
        seen["done_on_main"] = threading.current_thread() is threading.main_thread()
        seen["value"] = value
        return "finished"

    runner.start(tasks.Task("job", work, done))
    assert runner.busy and timers
    deadline = time.monotonic() + 5
    while runner.status.stage != "half way" and time.monotonic() < deadline:
        timers[-1]()
        time.sleep(0.01)
    assert runner.status.fraction == 0.5 and runner.status.eta_s == 12.0
    assert "value" not in seen, "nothing is delivered before the work ends"
    release.set()
    pump(runner, timers)
    assert seen == {"worker": False, "done_on_main": True, "value": 42}
    assert not runner.busy and runner.status.message == "finished" and not runner.status.failed
    assert runner.longest_callback_ms >= 0.0


def test_cancel_tells_the_task_and_reports_cancelled(tasks):
    timers, cancelled = [], threading.Event()
    runner = tasks.Runner(register_timer=timers.append)

    def work(progress):
        while True:
            progress(0.1, "waiting")
            time.sleep(0.01)

    runner.start(tasks.Task("long job", work, lambda value: "never", on_cancel=cancelled.set))
    runner.cancel()
    pump(runner, timers)
    assert cancelled.wait(2)
    assert runner.status.message == "long job: cancelled." and not runner.busy


def test_errors_become_one_sentence_and_a_second_task_waits_its_turn(tasks):
    from text_edit.bridge.errors import BridgeError

    timers = []
    runner = tasks.Runner(register_timer=timers.append)
    gate = threading.Event()

    def failing(progress):
        gate.wait(5)
        raise BridgeError("The bridge refused the request (401): wrong token.")

    runner.start(tasks.Task("first", failing, lambda value: None))
    with pytest.raises(BridgeError, match="busy with 'first'"):
        runner.start(tasks.Task("second", failing, lambda value: None))
    gate.set()
    pump(runner, timers)
    assert runner.status.failed and runner.status.message == "The bridge refused the request (401): wrong token."

    runner.start(tasks.Task("buggy", lambda progress: 1 / 0, lambda value: None))
    pump(runner, timers)
    assert runner.status.failed and "ZeroDivisionError" in runner.status.message and "\n" not in runner.status.message


def test_background_mode_runs_synchronously(tasks):
    runner = tasks.Runner(background=True)
    runner.start(tasks.Task("sync", lambda progress: threading.current_thread() is threading.main_thread(), lambda v: f"main={v}"))
    assert not runner.busy and runner.status.message == "main=True"


def test_a_finishing_generator_is_spread_over_ticks_within_the_budget(tasks):
    """on_done returning a generator (the import) runs in parts: no tick takes much longer than
    the budget, the panel says "importing" meanwhile, and the generator's value is the message."""
    timers, ticks, parts = [], [], []
    runner = tasks.Runner(register_timer=timers.append)

    def done(result):
        for index in range(8):
            time.sleep(0.012)  # a bpy call of 12 ms
            parts.append(index)
            yield
        return f"imported {result}"

    runner.start(tasks.Task("edit", lambda progress: "head", done))
    callback, stages = timers[-1], set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        started = time.perf_counter()
        again = callback()
        ticks.append(time.perf_counter() - started)
        stages.add(runner.status.stage)
        if again is None:
            break
        assert again <= tasks.POLL_S
        time.sleep(0.005)
    assert parts == list(range(8)) and runner.status.message == "imported head" and not runner.busy
    assert "importing" in stages
    assert max(ticks) < tasks.MAIN_THREAD_BUDGET_S + 0.03, ticks
    assert sum(1 for t in ticks if t > 0.01) >= 3, "the parts ran in one tick"


def test_a_finishing_generator_runs_at_once_in_background_mode_and_its_error_is_one_sentence(tasks):
    runner = tasks.Runner(background=True)

    def done(result):
        yield
        raise ValueError("bad mesh")

    runner.start(tasks.Task("edit", lambda progress: "head", done))
    assert not runner.busy and runner.status.failed
    assert runner.status.message.startswith("Text Edit could not finish 'edit' (ValueError: bad mesh)")


def test_a_follow_up_completes_off_the_runner_and_leaves_it_free(tasks):
    """An edit's pictures follow its head: their work runs on its own thread while the Runner
    takes the next task, and the result reaches the main thread on the same timer."""
    timers, seen = [], []
    runner = tasks.Runner(register_timer=timers.append)
    release = threading.Event()

    def pictures():
        release.wait(5)
        return threading.current_thread() is threading.main_thread()

    runner.follow_up(
        "pictures",
        pictures,
        lambda on_main_thread: seen.append(("pictures", on_main_thread, threading.current_thread() is threading.main_thread())),
    )
    assert not runner.busy and runner.following_up
    runner.start(tasks.Task("next edit", lambda progress: 7, lambda value: f"next edit: {value}"))
    pump_until = time.monotonic() + 5
    while runner.busy and time.monotonic() < pump_until:
        timers[-1]()
        time.sleep(0.01)
    assert runner.status.message == "next edit: 7" and seen == [] and runner.following_up
    assert timers[-1]() is not None, "the timer keeps running while a follow-up is out"
    release.set()
    pump(runner, timers)
    assert seen == [("pictures", False, True)] and not runner.following_up


def test_a_failed_follow_up_is_dropped(tasks, capsys):
    from text_edit.bridge.errors import BridgeError

    timers, seen = [], []
    runner = tasks.Runner(register_timer=timers.append)

    def refused():
        raise BridgeError("the bridge has gone")

    def buggy():
        raise ValueError("a bug")

    runner.follow_up("refused", refused, seen.append)
    runner.follow_up("buggy", buggy, seen.append)
    runner.follow_up("fine", lambda: 3, seen.append)
    pump(runner, timers)
    assert seen == [3] and not runner.status.failed and not runner.following_up
    assert "buggy could not be finished" in capsys.readouterr().out


def test_wait_delivers_the_follow_ups_too(tasks):
    """A script's api.edit returns after Runner.wait: the head's pictures must be on it by then."""
    timers, seen = [], []
    runner = tasks.Runner(register_timer=timers.append)

    def done(value):
        runner.follow_up("pictures", lambda: time.sleep(0.2) or "picture", seen.append)
        return "imported"

    runner.start(tasks.Task("edit", lambda progress: 1, done))
    runner.wait(5)
    assert seen == ["picture"] and runner.status.message == "imported" and not runner.following_up


def test_a_follow_up_still_out_at_shutdown_is_never_delivered(tasks):
    """Disabling the add-on while a head's pictures render: the late result must not reach the
    runner's next life (bpy code of a disabled add-on), nor make its wait block."""
    timers, seen = [], []
    runner = tasks.Runner(register_timer=timers.append)
    release = threading.Event()
    runner.follow_up("pictures", lambda: release.wait(5) and "late picture", seen.append)
    runner.shutdown()
    release.set()
    time.sleep(0.1)
    started = time.monotonic()
    runner.wait(2)
    pump(runner, timers)
    assert seen == [] and not runner.following_up and time.monotonic() - started < 1.0
