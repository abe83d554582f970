"""Background work without freezing Blender.

A Task's `work(progress)` runs in a worker thread and never touches bpy; what it reports (progress,
the result, an error sentence) goes on a queue that a bpy.app.timers callback drains on the main
thread, where `on_done`/`on_error` may touch bpy. In background mode (`blender -b`) there is no
event loop, so tasks run synchronously on the calling thread.

An `on_done` may return a generator (the import does): its parts then run on the following
timer ticks, as many per tick as fit in MAIN_THREAD_BUDGET_S, so no tick blocks Blender for long.

A finished task may leave a follow-up (`Runner.follow_up`: an edit's pictures, which the bridge is
still rendering when the head is imported): its work runs on a thread of its own and its result
reaches the main thread on the same timer, without keeping the Runner busy.

The timer callback's own duration is measured: `Runner.longest_callback_ms` is what the add-on
benchmark reports as the longest main-thread stall while a job runs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..bridge.errors import BridgeError

POLL_S = 0.1
MAIN_THREAD_BUDGET_S = 0.02
FINISH_TICK_S = 0.005
"""While an on_done generator runs, the timer comes back this soon (Blender draws in between)."""


class Cancelled(Exception):
    """The artist cancelled the task."""


@dataclass
class Task:
    label: str
    work: Callable[["Progress"], Any]
    on_done: Callable[[Any], None]
    on_cancel: Callable[[], None] | None = None
    """Called on the worker thread when the artist cancels (e.g. tell the bridge to stop the job)."""


@dataclass
class Status:
    label: str = ""
    fraction: float = 0.0
    stage: str = ""
    eta_s: float | None = None
    message: str = ""
    """The last finished task's outcome in one sentence (shown in the panel)."""
    failed: bool = False


class Progress:
    """Handed to `work`: report progress, and see whether the artist cancelled."""

    def __init__(self, report: Callable[[float, str, float | None], None], cancel: threading.Event):
        self._report, self._cancel = report, cancel

    def __call__(self, fraction: float, stage: str = "", eta_s: float | None = None) -> None:
        self.check()
        self._report(max(0.0, min(1.0, fraction)), stage, eta_s)

    def within(self, low: float, high: float) -> "Progress":
        """The same progress with its fractions mapped into [low, high]: one part of a longer task."""
        return Progress(lambda fraction, stage, eta_s: self._report(low + (high - low) * fraction, stage, eta_s), self._cancel)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()


@dataclass
class Runner:
    """Runs one task at a time; the panel reads `status` and `busy`."""

    background: bool = False
    status: Status = field(default_factory=Status)
    longest_callback_ms: float = 0.0
    on_change: Callable[[], None] = lambda: None
    """Called on the main thread whenever `status` changed (the add-on redraws its panel)."""
    register_timer: Callable[[Callable[[], float | None]], None] | None = None
    """How the drain callback is scheduled; default bpy.app.timers (a test or benchmark may pump it)."""
    _task: Task | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _events: queue.Queue = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _finishing: tuple[Task, Generator] | None = None
    _follow_ups: queue.Queue = field(default_factory=queue.Queue)
    _pending_follow_ups: int = 0

    def __post_init__(self) -> None:
        # One bound method object for the runner's life: bpy.app.timers knows callbacks by identity.
        self.timer_callback = self.drain_timer

    @property
    def busy(self) -> bool:
        return self._task is not None or self._finishing is not None

    @property
    def following_up(self) -> bool:
        return self._pending_follow_ups > 0

    def start(self, task: Task) -> None:
        if self.busy:
            raise BridgeError(f"Text Edit is busy with '{self._task.label}'; wait for it or cancel it first.")
        self._task, self._cancel = task, threading.Event()
        self.status = Status(label=task.label, stage="starting")
        self.on_change()
        progress = Progress(self._report, self._cancel)
        if self.background:
            self._run(task, progress)
            self._drain()
            return
        self._thread = threading.Thread(target=self._run, args=(task, progress), name=f"text-edit: {task.label}", daemon=True)
        self._thread.start()
        self._ensure_timer()

    def follow_up(self, label: str, work: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        """`work()` on a thread of its own, then `on_done(result)` on the main thread; the Runner
        stays free for the next task meanwhile. A BridgeError in either only drops the follow-up
        (what it completes is already in); in background mode both run now."""
        if self.background:
            _follow_up(label, on_done, work)
            return
        self._pending_follow_ups += 1
        delivered_to = self._follow_ups  # after a shutdown, a late result goes to the old queue, not the new runner's

        def run() -> None:
            try:
                delivered_to.put((label, on_done, work()))
            except BaseException as error:  # noqa: BLE001 (delivered, and said, on the main thread)
                delivered_to.put((label, None, error))

        threading.Thread(target=run, name=f"text-edit: {label}", daemon=True).start()
        self._ensure_timer()

    def _ensure_timer(self) -> None:
        if self.register_timer is not None:
            self.register_timer(self.timer_callback)
            return
        import bpy

        if not bpy.app.timers.is_registered(self.timer_callback):
            bpy.app.timers.register(self.timer_callback, first_interval=POLL_S)

    def cancel(self) -> None:
        if self._task is None or self._cancel.is_set():
            return
        self._cancel.set()
        self.status.stage = "cancelling"
        task = self._task
        if task.on_cancel is not None:
            threading.Thread(target=_quietly, args=(task.on_cancel,), daemon=True).start()
        self.on_change()

    def shutdown(self, timeout_s: float = 3.0) -> None:
        """Cancel the running task and give its thread a moment to end (the add-on is being
        disabled or Blender quits: a thread left running can hang the interpreter's exit)."""
        self.cancel()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._task, self._thread, self._events, self._finishing = None, None, queue.Queue(), None
        self._follow_ups, self._pending_follow_ups = queue.Queue(), 0
        self.on_change = lambda: None

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the worker thread ends, then deliver its outcome and its follow-ups (scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._drain()
        while self._finishing is not None:
            self._advance(float("inf"))
        self._deliver_follow_ups(wait_s=timeout_s)

    def _report(self, fraction: float, stage: str, eta_s: float | None) -> None:
        self._events.put(("progress", (fraction, stage, eta_s)))

    def _run(self, task: Task, progress: Progress) -> None:
        try:
            self._events.put(("done", task.work(progress)))
        except Cancelled:
            self._events.put(("cancelled", None))
        except BridgeError as error:
            self._events.put(("error", str(error)))
        except Exception as error:  # a bug: still one sentence for the artist, details in the console
            import traceback

            traceback.print_exc()
            self._events.put(("error", f"Text Edit hit an internal error ({type(error).__name__}: {error}); see the system console."))

    def drain_timer(self) -> float | None:
        """The main-thread callback: deliver what the worker reported; run again while busy."""
        started = time.perf_counter()
        try:
            if self._finishing is not None:
                self._advance(MAIN_THREAD_BUDGET_S)
            else:
                self._drain()
                self._deliver_follow_ups()
        finally:
            self.longest_callback_ms = max(self.longest_callback_ms, (time.perf_counter() - started) * 1000)
        if not self.busy and not self.following_up:
            return None
        return FINISH_TICK_S if self._finishing is not None else POLL_S

    def _deliver_follow_ups(self, wait_s: float | None = 0.0) -> None:
        """Deliver the follow-ups that have finished; with `wait_s` other than 0, wait that long
        (None: as long as it takes) for those still out."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                if wait_s == 0.0 or self._pending_follow_ups <= 0:
                    label, on_done, result = self._follow_ups.get_nowait()
                else:
                    label, on_done, result = self._follow_ups.get(
                        timeout=None if deadline is None else max(0.0, deadline - time.monotonic())
                    )
            except queue.Empty:
                return
            self._pending_follow_ups -= 1
            _follow_up(label, on_done, partial(_raise, result) if on_done is None else partial(_identity, result))
            self.on_change()

    def _advance(self, budget_s: float) -> None:
        """Run parts of the finishing generator until `budget_s` is spent (all of it in background mode)."""
        task, steps = self._finishing
        started = time.perf_counter()
        try:
            while self.background or time.perf_counter() - started < budget_s:
                next(steps)
            return
        except StopIteration as finished:
            self.status = Status(message=finished.value or f"{task.label}: done.")
        except Exception as error:  # noqa: BLE001 (one sentence, never a traceback in the panel)
            self.status = _failure(task, error)
        self._finishing = None
        self.on_change()

    def _drain(self) -> None:
        changed = False
        while self._finishing is None:
            try:
                kind, payload = self._events.get_nowait()
            except queue.Empty:
                break
            changed = True
            if kind == "progress":
                self.status.fraction, stage, self.status.eta_s = payload
                self.status.stage = stage or self.status.stage
                continue
            task, self._task, self._thread = self._task, None, None
            if kind == "done":
                try:
                    message = task.on_done(payload)
                    if isinstance(message, Generator):
                        self._finishing = (task, message)
                        self.status.stage = "importing"
                        self._advance(MAIN_THREAD_BUDGET_S)
                        continue
                    self.status = Status(message=message or f"{task.label}: done.")
                except Exception as error:  # noqa: BLE001 (one sentence, never a traceback in the panel)
                    self.status = _failure(task, error)
            elif kind == "cancelled":
                self.status = Status(message=f"{task.label}: cancelled.")
            else:
                self.status = Status(message=payload, failed=True)
        if changed:
            self.on_change()


def _failure(task: Task, error: Exception) -> Status:
    """A finishing step's error as the panel's one sentence (a bug's details go to the console)."""
    if isinstance(error, BridgeError):
        return Status(message=str(error), failed=True)
    import traceback

    traceback.print_exception(error)
    return Status(
        message=f"Text Edit could not finish '{task.label}' ({type(error).__name__}: {error}); see the system console.", failed=True
    )


def _follow_up(label: str, on_done: Callable[[Any], None] | None, work: Callable[[], Any]) -> None:
    """Run a follow-up to its end: a BridgeError drops it; a bug is printed to the console."""
    try:
        result = work()
        if on_done is not None:
            on_done(result)
    except BridgeError:
        pass
    except Exception:  # noqa: BLE001 (a follow-up completes a finished task: never an error in the panel)
        import traceback

        print(f"Text Edit: {label} could not be finished:")
        traceback.print_exc()


def _raise(error: BaseException):
    raise error


def _identity(value: Any) -> Any:
    return value


def _quietly(call: Callable[[], None]) -> None:
    try:
        call()
    except BridgeError:
        pass
