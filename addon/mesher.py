"""Meshing off Blender's process: a long-lived helper process running mesh_export.worker.

A thread inside Blender that holds Python's GIL (xatlas's packer does, for ~100 ms at 128^3) keeps
the main thread's timers from running: the viewport stalls. The helper is the same Python Blender
runs (sys.executable) with the same sys.path, importing mesh_export from the extension's folder.
It is started on first use (or at Connect) and kept; if it cannot start or dies, meshing runs on
the worker thread as before, with the same result. Cancel stops it (the next edit starts another).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

from .. import mesh_export
from ..mesh_export import worker
from .tasks import Progress

PACKAGE_PARENT = str(Path(mesh_export.__file__).resolve().parents[1])
"""The folder holding mesh_export/: on the helper's sys.path, mesh_export imports as itself."""
START = "import sys, json; sys.path[:0] = json.loads(sys.argv[1]); import mesh_export.worker as w; w.serve()"


class Mesher:
    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.folder = Path(tempfile.mkdtemp(prefix="text-edit-mesher-"))
        self.failed = False
        self.answered = False
        self.requests = 0

    def start(self) -> bool:
        """Start the helper if it is not running; False if it cannot run here."""
        process = self.process
        if process is not None and process.poll() is None:
            return True
        if self.failed:
            return False
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        try:
            self.process = subprocess.Popen(
                [self.python, "-c", START, json.dumps([PACKAGE_PARENT, *sys.path])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                creationflags=flags,
                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
            )
        except OSError:
            self.failed, self.process = True, None
        return self.process is not None

    def interrupt(self) -> None:
        """Kill the helper now (Cancel, from any thread): a request waiting on it ends at once."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()

    def stop(self) -> None:
        self.interrupt()
        process, self.process = self.process, None
        if process is not None:
            process.wait()
        for name in ("field.npz", "mesh.npz"):
            (self.folder / name).unlink(missing_ok=True)

    def grid_file(self) -> Path:
        """A new file in the helper's folder to download a field into (`mesh` takes it, the caller deletes it)."""
        handle, name = tempfile.mkstemp(prefix="field-", suffix=".npz", dir=self.folder)
        os.close(handle)
        return Path(name)

    def mesh(
        self, grid: bytes | Path, options: mesh_export.ExportOptions, progress: Progress, span: tuple[float, float]
    ) -> mesh_export.TexturedMesh:
        """grid_to_mesh of a FieldGrid (its bytes, or its file; field space), in the helper when it runs."""
        with self.lock:
            if not self.start():
                return _in_thread(grid, options, progress, span)
            try:
                answer = self._ask(grid, options, progress, span)
            except BaseException:  # cancelled, or a reply out of protocol: never reuse a helper mid-request
                self.stop()
                raise
            if answer is None:  # the helper is gone: mesh here, unless it was stopped on purpose
                returncode = self.process.poll() if self.process is not None else None
                self.stop()
                progress.check()
                if not self.answered:
                    self.failed = True  # it cannot run here: do not start one for every edit
                if returncode is not None and returncode < 0 and self.answered:
                    raise mesh_export.FieldGridError(
                        "the meshing helper was stopped by the system (out of memory?); try a smaller grid or texture"
                    )
                return _in_thread(grid, options, progress, span)
            self.answered = True
            if "error" in answer:
                raise mesh_export.FieldGridError(str(answer["error"]))
            return worker.load_mesh(self.folder / "mesh.npz")

    def _ask(self, grid: bytes | Path, options, progress: Progress, span: tuple[float, float]) -> dict | None:
        """Send one request and follow it to its last answer (None if the helper died)."""
        low, high = span
        self.requests += 1
        if isinstance(grid, Path):
            grid_path = grid
        else:
            grid_path = self.folder / "field.npz"
            grid_path.write_bytes(grid)
        request = {"id": self.requests, "grid": str(grid_path), "mesh": str(self.folder / "mesh.npz"), "options": asdict(options)}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        while True:
            line = self.process.stdout.readline()
            if not line:
                return None
            answer = json.loads(line)
            if not isinstance(answer, dict) or answer.get("id") != self.requests:
                raise mesh_export.FieldGridError("the meshing helper answered out of turn")
            if "stage" in answer:
                progress(low + (high - low) * float(answer["fraction"]), str(answer["stage"]))
            else:
                return answer


def _in_thread(grid: bytes | Path, options, progress: Progress, span: tuple[float, float]) -> mesh_export.TexturedMesh:
    low, high = span
    field = mesh_export.read(grid) if isinstance(grid, Path) else mesh_export.read_bytes(grid)
    return mesh_export.grid_to_mesh(
        field, options, progress=lambda stage, fraction: progress(low + (high - low) * fraction, stage), cache=worker.SURFACES
    )


MESHER = Mesher()
