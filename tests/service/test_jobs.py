"""The job store and worker in-process, with runners that write results and then fail, are cancelled
or finish: results are listed (and kept) only for jobs that are done, and the cache is private."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from bridge.errors import BridgeError
from bridge.service.jobs import CANCELLED, DONE, FAILED, FINISHED, Cancelled, Job, JobStore, Worker


def _write_then(outcome):
    def runner(ctx):
        ctx.add_result("field.npz", "application/octet-stream").write_bytes(b"grid")
        ctx.progress(0.88, "rendering previews")
        ctx.add_result("preview.png", "image/png").write_bytes(b"png")
        if outcome is not None:
            raise outcome

    return runner


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_results_only_for_jobs_that_are_done_and_owner_only(tmp_path, permissive_umask):
    store = JobStore(tmp_path / "jobs", result_days=7)
    runners = {
        "done": _write_then(None),
        "failed": _write_then(BridgeError("The edit went wrong.")),
        "cancelled": _write_then(Cancelled()),
        "crashed": _write_then(RuntimeError("a bug")),
    }
    worker = Worker(store, runners, max_queued=8)
    worker.start()
    try:
        jobs = {kind: worker.submit(kind, {}) for kind in runners}
        deadline = time.monotonic() + 30
        while any(job.state not in FINISHED for job in jobs.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert [jobs[k].state for k in runners] == [DONE, FAILED, CANCELLED, FAILED]
    done = jobs["done"]
    assert done.public()["results"] == {"field.npz": "application/octet-stream", "preview.png": "image/png"}
    assert sorted(p.name for p in store.folder_of(done.id).iterdir()) == ["field.npz", "job.json", "preview.png"]
    for kind in ("failed", "cancelled", "crashed"):
        job = jobs[kind]
        assert job.results == {} and job.public()["results"] == {}, kind
        assert [p.name for p in store.folder_of(job.id).iterdir()] == ["job.json"], kind
        assert json.loads((store.folder_of(job.id) / "job.json").read_text())["results"] == {}
    if os.name == "posix":
        assert _mode(store.folder) == 0o700
        for job in jobs.values():
            assert _mode(store.folder_of(job.id)) == 0o700
            assert all(_mode(path) == 0o600 for path in store.folder_of(job.id).iterdir())


def test_a_job_killed_while_writing_results_comes_back_failed_without_them(tmp_path):
    """As left by a kill during "rendering previews": job.json says running (an older bridge also
    listed field.npz there), a finished field.npz and a half-written preview lie in the folder."""
    store = JobStore(tmp_path / "jobs", result_days=7)
    job = Job(
        "0123456789abcdef", "edit", {}, state="running", stage="rendering previews", results={"field.npz": "application/octet-stream"}
    )
    folder = store.folder_of(job.id)
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps(job.__dict__))
    (folder / "field.npz").write_bytes(b"grid")
    (folder / ".partial-preview.png").write_bytes(b"half a pic")

    again = JobStore(tmp_path / "jobs", result_days=7)
    again.recover()
    lost = again.get(job.id)
    assert lost.state == FAILED and "killed or crashed" in lost.error
    assert lost.results == {} and lost.public()["results"] == {}
    assert [p.name for p in folder.iterdir()] == ["job.json"]
    assert json.loads((folder / "job.json").read_text())["results"] == {}


def test_a_jobs_inputs_are_kept_until_it_ends_however_it_ends(tmp_path):
    """A head job's picture waits in its folder: the runner reads it, and it is gone once the job is
    done, failed, or cancelled while still queued (a kept picture outlived such jobs before)."""
    import threading

    store = JobStore(tmp_path / "jobs", result_days=7)
    release, seen = threading.Event(), []

    def reads_its_picture(ctx):
        seen.append(ctx.input("picture"))
        release.wait(10)

    worker = Worker(store, {"head": reads_its_picture}, max_queued=1)
    worker.start()
    try:
        running = worker.submit("head", {}, inputs={"picture": b"first"})
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = worker.submit("head", {}, inputs={"picture": b"second"})
        assert (store.folder_of(queued.id) / "input-picture").read_bytes() == b"second"
        with pytest.raises(BridgeError, match="already waiting"):
            worker.submit("head", {}, inputs={"picture": b"third"})
        assert len(list(store.folder.iterdir())) == 2, "a refused job keeps nothing"
        assert worker.cancel(queued.id).state == CANCELLED
        assert list(store.folder_of(queued.id).iterdir()) == [store.folder_of(queued.id) / "job.json"]
        release.set()
        while running.state not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
        worker.stop()
    assert seen == [b"first"] and running.state == DONE
    assert [p.name for p in store.folder_of(running.id).iterdir()] == ["job.json"]


@pytest.mark.parametrize(
    "damage",
    [
        {"finished": "yesterday"},
        {"created": "x"},
        {"state": "exploded"},
        {"results": {"field.npz": 3}},
        {"request": "all of it"},
        {"id": "fedcba9876543210"},
        {"progress": True},
    ],
)
def test_a_damaged_job_record_is_dropped_and_the_rest_are_served(tmp_path, damage):
    """A record with a field of the wrong type used to stop `serve` at start (TypeError while
    expiring) or make GET /v1/jobs answer 500; one naming another folder's job would have had
    that folder deleted."""
    store = JobStore(tmp_path / "jobs", result_days=7)
    good, bad = (Job(job_id, "edit", {}, state=DONE, finished=time.time()) for job_id in ("0123456789abcdef", "00000000000000aa"))
    for job, changes in ((good, {}), (bad, damage)):
        store.folder_of(job.id).mkdir(parents=True)
        (store.folder_of(job.id) / "job.json").write_text(json.dumps({**job.__dict__, **changes}))
    (store.folder / "fedcba9876543210").mkdir()
    again = JobStore(tmp_path / "jobs", result_days=7)
    again.recover()
    assert list(again.jobs) == [good.id] and [job.public() for job in again.jobs.values()]
    assert not store.folder_of(bad.id).exists() and (store.folder / "fedcba9876543210").exists()


@pytest.fixture
def bridge_log(tmp_path):
    from bridge.service.logs import close_log, log_to_file

    yield log_to_file(tmp_path)
    close_log()


def test_a_bug_in_a_job_says_where_its_traceback_was_written(tmp_path, bridge_log):
    store = JobStore(tmp_path / "jobs", result_days=7)
    worker = Worker(store, {"crashed": _write_then(RuntimeError("a bug\nwith a second line"))}, max_queued=8)
    worker.start()
    try:
        job = worker.submit("crashed", {})
        deadline = time.monotonic() + 30
        while job.state not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert job.state == FAILED
    assert job.error == f"Internal error (RuntimeError: a bug); the traceback is in {bridge_log}. Please report it."
    written = bridge_log.read_text()
    assert f"job {job.id} failed" in written and "Traceback (most recent call last)" in written and "RuntimeError: a bug" in written
    if os.name == "posix":
        assert _mode(bridge_log) == 0o600


def test_a_bug_behind_a_request_answers_one_sentence_naming_the_log(tmp_path, bridge_log):
    """A real server on loopback whose engine fails with an unexpected exception: 500 with the
    sentence (not Starlette's bare "Internal Server Error"), the traceback in the log."""
    import http.client
    import threading
    import types

    import uvicorn

    from bridge.service.api import create_app
    from bridge.service.launcher import free_port

    def create_head(*args):
        raise KeyError("a bug in the engine")

    port = free_port()
    store = JobStore(tmp_path / "jobs", result_days=7)
    app = create_app(types.SimpleNamespace(create_head=create_head), store, Worker(store, {}, 8), "t" * 43, "127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "POST",
            "/v1/heads",
            body=json.dumps({"seed": 1}),
            headers={"Authorization": "Bearer " + "t" * 43, "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert response.status == 500
    assert answer["detail"] == f"Internal error (KeyError: 'a bug in the engine'); the traceback is in {bridge_log}. Please report it."
    written = bridge_log.read_text()
    assert "POST /v1/heads failed" in written and "KeyError: 'a bug in the engine'" in written


def test_running_out_of_memory_or_disk_says_what_to_do(tmp_path, bridge_log):
    import errno

    store = JobStore(tmp_path / "jobs", result_days=7)
    full = OSError(errno.ENOSPC, "No space left on device")
    worker = Worker(store, {"memory": _write_then(MemoryError()), "disk": _write_then(full)}, max_queued=8)
    worker.start()
    try:
        jobs = {kind: worker.submit(kind, {}) for kind in ("memory", "disk")}
        deadline = time.monotonic() + 30
        while any(job.state not in FINISHED for job in jobs.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert jobs["memory"].error.startswith("The bridge ran out of memory for this job; try a smaller grid")
    assert jobs["disk"].error.startswith(f"The disk holding {store.folder} is full")
    assert all(store.folder_of(job.id).joinpath("job.json").is_file() and job.results == {} for job in jobs.values())


def test_a_disk_that_takes_no_more_records_does_not_stop_the_worker(tmp_path, monkeypatch):
    """The worker saved the job's record outside any try: a full disk there killed its thread and
    every later job stayed queued for ever."""
    import errno

    from bridge.service import jobs as jobs_module

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    store = JobStore(tmp_path / "jobs", result_days=7)
    worker = Worker(store, {"done": _write_then(None), "disk": _write_then(OSError(errno.ENOSPC, "No space left on device"))}, 8)
    worker.start()
    try:
        monkeypatch.setattr(jobs_module, "write_private", full)
        first, second = worker.submit("disk", {}), worker.submit("done", {})
        deadline = time.monotonic() + 30
        while second.state not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert first.state == FAILED and "is full" in first.error
    assert second.state == DONE, "the worker went on to the next job"
