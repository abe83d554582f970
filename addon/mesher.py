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
from .tasks import Cancelled, Progress

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

    def start(self) -> bool:
        """Start the helper if it is not running; False if it cannot run here."""
        if self.process is not None and self.process.poll() is None:
            return True
        if self.failed:
            return False
        try:
            self.process = subprocess.Popen(
                [self.python, "-c", START, json.dumps([PACKAGE_PARENT, *sys.path])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
            )
        except OSError:
            self.failed, self.process = True, None
        return self.process is not None

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        for name in ("field.npz", "mesh.npz"):
            (self.folder / name).unlink(missing_ok=True)

    def mesh(
        self, grid_bytes: bytes, options: mesh_export.ExportOptions, progress: Progress, span: tuple[float, float]
    ) -> mesh_export.TexturedMesh:
        """grid_to_mesh of the FieldGrid bytes (field space), in the helper when it runs."""
        low, high = span
        with self.lock:
            if not self.start():
                return _in_thread(grid_bytes, options, progress, span)
            grid_path, mesh_path = self.folder / "field.npz", self.folder / "mesh.npz"
            grid_path.write_bytes(grid_bytes)
            request = {"grid": str(grid_path), "mesh": str(mesh_path), "options": asdict(options)}
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                while True:
                    line = self.process.stdout.readline()
                    if not line:  # it died: mesh here instead, and let the next edit start a new one
                        self.stop()
                        return _in_thread(grid_bytes, options, progress, span)
                    answer = json.loads(line)
                    if "stage" in answer:
                        if progress.cancelled:
                            self.stop()
                            raise Cancelled()
                        progress(low + (high - low) * answer["fraction"], answer["stage"])
                    elif "error" in answer:
                        raise mesh_export.FieldGridError(answer["error"])
                    else:
                        return worker.load_mesh(mesh_path)
            except (BrokenPipeError, ValueError):
                self.stop()
                return _in_thread(grid_bytes, options, progress, span)


def _in_thread(grid_bytes: bytes, options, progress: Progress, span: tuple[float, float]) -> mesh_export.TexturedMesh:
    low, high = span
    return mesh_export.grid_to_mesh(
        mesh_export.read_bytes(grid_bytes), options, progress=lambda stage, fraction: progress(low + (high - low) * fraction, stage)
    )


MESHER = Mesher()
