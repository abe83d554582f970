"""Jobs: persisted records, one worker that owns the device and runs them in order.

A job's folder `<cache>/jobs/<id>/` (0700) holds `job.json` (written atomically on every change)
and its result files (0600). A runner writes each result to a temporary name in that folder; only
when the job is done are they moved into place (os.replace) and listed, so a failed, cancelled or
killed job has no results and a half-written file is never served. On start, a job found "running"
or "queued" was lost with the previous process (a crash or kill) and is reported as failed with
that reason; finished jobs are kept until they are deleted or `result_days` after they finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bridge.errors import BridgeError
from bridge.service.logs import internal_error, resource_problem
from bridge.service.security import private_file, private_folder, write_private
from mesh_export.fieldgrid import FieldGridError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
PARTIAL = ".partial-"
"""The prefix of a result file being written."""
LOST = "The bridge stopped while this job was {state} (it was killed or crashed); submit it again."
INPUT = "input-"
"""The prefix of a file a job was submitted with (a picture); deleted when the job ends, however it ends."""


class QueueFull(BridgeError):
    pass


class Cancelled(Exception):
    """Raised inside a runner when the job was cancelled."""


@dataclass
class Job:
    id: str
    kind: str
    request: dict
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: float = 0.0
    stage: str = "queued"
    eta_s: float | None = None
    """Seconds left, extrapolated from the progress so far (while running, from 5% on)."""
    error: str | None = None
    results: dict[str, str] = field(default_factory=dict)
    """Result name -> media type, once the job is done; the files are in the job's folder."""
    info: dict = field(default_factory=dict)

    def public(self) -> dict:
        out = asdict(self)
        if self.state != DONE:
            out["results"] = {}
        if self.state == RUNNING and self.started and self.progress >= 0.05:
            out["eta_s"] = round((time.time() - self.started) * (1 - self.progress) / self.progress, 1)
        return out


class JobContext:
    """What a runner gets: where to write results, and how to report progress and see a cancel."""

    def __init__(self, store: "JobStore", job: Job, cancel: threading.Event):
        self.store, self.job, self._cancel = store, job, cancel
        self.folder = store.folder_of(job.id)
        self._pending: dict[str, tuple[str, Path]] = {}

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def progress(self, fraction: float, stage: str | None = None) -> None:
        if stage:
            self.job.stage = stage
        self.job.progress = max(0.0, min(1.0, float(fraction)))
        self.store.save(self.job)

    def add_result(self, name: str, media_type: str) -> Path:
        """Where to write result `name`: a temporary file (same suffix) that commit() moves into place."""
        temporary = self.folder / f"{PARTIAL}{name}"
        self._pending[name] = (media_type, temporary)
        return temporary

    def commit(self) -> dict[str, str]:
        """Move the written results into place, owner-only; their name -> media type."""
        for name, (_, temporary) in self._pending.items():
            os.replace(private_file(temporary), self.folder / name)
        results = {name: media_type for name, (media_type, _) in self._pending.items()}
        self._pending.clear()
        return results

    def input(self, name: str) -> bytes:
        """A file the job was submitted with (`Worker.submit(inputs=...)`)."""
        try:
            return (self.folder / f"{INPUT}{name}").read_bytes()
        except OSError:
            raise BridgeError(f"The job's {name} is gone from the bridge's cache; submit the job again.") from None

    def discard(self) -> None:
        """Delete results written but not committed (the job failed or was cancelled)."""
        for _, temporary in self._pending.values():
            temporary.unlink(missing_ok=True)
        self._pending.clear()


Runner = Callable[[JobContext], None]


class JobStore:
    def __init__(self, folder: Path, result_days: float):
        self.folder = private_folder(folder)
        self.result_days = result_days
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def folder_of(self, job_id: str) -> Path:
        return self.folder / job_id

    def save(self, job: Job) -> None:
        """Write the job's record; when the disk will not take it (full), the record in memory still
        answers and the worker goes on (a restart then finds the older record on disk)."""
        with self._lock:
            try:
                write_private(private_folder(self.folder_of(job.id)) / "job.json", json.dumps(job.public()).encode())
            except OSError as error:
                log.warning("could not write the record of job %s (%s)", job.id, error)

    def new(self, kind: str, request: dict) -> Job:
        job = Job(uuid.uuid4().hex[:16], kind, request)
        self.jobs[job.id] = job
        self.save(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def delete(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        shutil.rmtree(self.folder_of(job_id), ignore_errors=True)

    def recover(self) -> None:
        """Load the jobs of earlier runs: lost ones become failed, expired ones are deleted."""
        for meta in sorted(self.folder.glob("*/job.json")):
            try:
                job = _recorded_job(json.loads(meta.read_text()), meta.parent.name)
            except (OSError, ValueError, TypeError):
                log.warning("dropping an unreadable job record %s", meta)
                shutil.rmtree(meta.parent, ignore_errors=True)
                continue
            private_folder(meta.parent)
            if job.state not in FINISHED:
                job.error = LOST.format(state=job.state)
                job.state, job.stage, job.finished = FAILED, "failed", time.time()
                self.save(job)
            if job.state != DONE:  # what a lost or failed job wrote is no result
                job.results = {}
                for path in meta.parent.iterdir():
                    if path.name != "job.json" and path.is_file():
                        path.unlink(missing_ok=True)
            self.jobs[job.id] = job
        self.expire()

    def expire(self) -> None:
        limit = time.time() - self.result_days * 86400
        for job in list(self.jobs.values()):
            if job.state in FINISHED and (job.finished or 0) < limit:
                self.delete(job.id)


def _recorded_job(record, folder_name: str) -> Job:
    """A job record read back from disk, every field of the type the bridge wrote (a damaged or
    hand-edited record raises ValueError): a record is trusted with its folder's deletion."""
    if not isinstance(record, dict) or record.get("id") != folder_name or not re.fullmatch(r"[0-9a-f]{16}", folder_name):
        raise ValueError("not this folder's job record")
    job = Job(**record)
    wrong = [f.name for f in dataclasses.fields(Job) if not _of_declared_type(getattr(job, f.name), f.type)]
    if wrong or job.state not in (QUEUED, RUNNING, *FINISHED) or not all(isinstance(v, str) for v in (*job.results, *job.results.values())):
        raise ValueError(f"fields of the wrong type: {wrong}")
    return job


_TYPES = {"str": (str,), "dict": (dict,), "float": (int, float), "None": (type(None),)}


def _of_declared_type(value, declared: str) -> bool:
    """Whether `value` is of a Job field's annotation ("float | None", "dict[str, str]"; JSON's
    whole numbers count as floats, booleans as neither)."""
    kinds = [_TYPES[part.strip().split("[")[0]] for part in declared.split("|")]
    return not isinstance(value, bool) and any(isinstance(value, kind) for kind in kinds)


class Worker:
    """One thread that runs jobs in submission order; cancel works queued or running."""

    def __init__(self, store: JobStore, runners: dict[str, Runner], max_queued: int):
        self.store, self.runners, self.max_queued = store, runners, max_queued
        self.queue: deque[str] = deque()
        self.cancels: dict[str, threading.Event] = {}
        self.current: str | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self.thread = threading.Thread(target=self._loop, name="bridge-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            for event in self.cancels.values():
                event.set()
            self._wake.notify()
        self.thread.join(timeout=30)

    def submit(self, kind: str, request: dict, inputs: dict[str, bytes] | None = None) -> Job:
        """Queue a job; `inputs` (name -> bytes, a picture) are kept in its folder until it ends."""
        with self._wake:
            if len(self.queue) >= self.max_queued:
                raise QueueFull(f"{len(self.queue)} jobs are already waiting; wait for some to finish or cancel them.")
            job = self.store.new(kind, request)
            try:
                for name, data in (inputs or {}).items():
                    write_private(private_folder(self.store.folder_of(job.id)) / f"{INPUT}{name}", data)
            except OSError as error:
                self.store.delete(job.id)
                raise BridgeError(resource_problem(error, self.store.folder) or f"Cannot keep the job's {name} ({error}).") from None
            self.cancels[job.id] = threading.Event()
            self.queue.append(job.id)
            self._wake.notify()
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        with self._wake:
            if job.state == QUEUED:
                self.queue.remove(job.id)
                self._finish(job, CANCELLED, "cancelled")
            elif job.state == RUNNING and job.id in self.cancels:  # not if it finished a moment ago
                self.cancels[job.id].set()
                job.stage = "cancelling"
                self.store.save(job)
        return job

    def _finish(self, job: Job, state: str, stage: str, error: str | None = None, results: dict | None = None) -> None:
        job.results = results or {}  # before the state: a reader sees results only once the job is done
        job.state, job.stage, job.error, job.finished = state, stage, error, time.time()
        if state == DONE:
            job.progress = 1.0
        self.cancels.pop(job.id, None)
        for path in self.store.folder_of(job.id).glob(f"{INPUT}*"):
            path.unlink(missing_ok=True)
        self.store.save(job)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self.queue and not self._stopping:
                    self._wake.wait(timeout=3600)
                    self.store.expire()
                if self._stopping:
                    return
                job = self.store.get(self.queue.popleft())
                cancel = self.cancels[job.id]
                job.state, job.stage, job.started = RUNNING, "starting", time.time()
                self.current = job.id
                self.store.save(job)
            context = JobContext(self.store, job, cancel)
            results = None
            try:
                self.runners[job.kind](context)
                context.check()  # a cancel that came as the runner finished
                results = context.commit()
                outcome = (DONE, "done", None)
            except Cancelled:
                outcome = (CANCELLED, "cancelled", None)
            except (BridgeError, FieldGridError) as error:  # what the user can act on (a grid a job could not make, too)
                outcome = (FAILED, "failed", str(error))
            except Exception as error:  # out of memory or disk, or a bug: keep serving, say what to do
                log.exception("job %s failed", job.id)
                outcome = (FAILED, "failed", resource_problem(error, self.store.folder) or internal_error(error))
            finally:
                context.discard()  # before the state: whoever sees the job ended finds no half-written results
            self._finish(job, *outcome, results=results)
            self.current = None
