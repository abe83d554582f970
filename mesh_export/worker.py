"""grid_to_mesh in a helper process, one request per line (what the add-on's mesher starts).

Why a process: xatlas's chart packer holds Python's GIL for ~100 ms, and inside Blender a thread
holding the GIL keeps the main thread's timers from running. The protocol is plain data:

    in:  {"id": N, "grid": PATH, "mesh": PATH, "options": {ExportOptions fields}}   one JSON line
    out: {"id": N, "stage": NAME, "fraction": F} lines while it works, then {"id": N, "done": true}
         or {"id": N, "error": SENTENCE}; the mesh is written to PATH as an .npz of TexturedMesh's arrays
         with its provenance as JSON (`save_mesh` / `load_mesh`).

The helper keeps the surfaces it made last (`SURFACES`): the next grid with the same density (a
colour edit of the same head) is re-coloured, not meshed again.

`python -c "import mesh_export.worker as w; w.serve()"` with mesh_export's folder on sys.path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

import numpy as np

from .fieldgrid import FieldGridError, read
from .pipeline import ExportOptions, SurfaceCache, TexturedMesh, grid_to_mesh

ARRAYS = ("vertices", "faces", "normals", "colours", "uvs", "masks", "welded")
SURFACES = SurfaceCache()
"""The helper meshes edit after edit of the same heads: a colour edit re-colours the last surface."""


def save_mesh(mesh: TexturedMesh, path: Path) -> None:
    arrays = {name: getattr(mesh, name) for name in ARRAYS}
    if mesh.texture is not None:
        arrays["texture"] = mesh.texture
    arrays["provenance"] = np.frombuffer(json.dumps(mesh.provenance).encode(), dtype=np.uint8)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def load_mesh(path: Path, space: str = "field") -> TexturedMesh:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in ARRAYS}
        texture = data["texture"] if "texture" in data else None
        provenance = json.loads(data["provenance"].tobytes().decode())
    return TexturedMesh(**arrays, texture=texture, provenance=provenance, space=space)


def handle(request: dict, send) -> None:
    ident = request.get("id")

    def progress(stage: str, fraction: float) -> None:
        send({"id": ident, "stage": stage, "fraction": fraction})

    try:
        mesh = grid_to_mesh(read(Path(request["grid"])), ExportOptions(**request.get("options", {})), progress=progress, cache=SURFACES)
        save_mesh(mesh, Path(request["mesh"]))
    except (FieldGridError, ValueError, OSError, MemoryError) as error:
        send({"id": ident, "error": str(error) or type(error).__name__})
        return
    send({"id": ident, "done": True})


def serve(stdin: IO[str] = sys.stdin, stdout: IO[str] = sys.stdout) -> None:
    def send(message: dict) -> None:
        stdout.write(json.dumps(message) + "\n")
        stdout.flush()

    for line in stdin:
        if line.strip():
            request = {}
            try:
                request = json.loads(line)
                handle(request, send)
            except Exception as error:  # noqa: BLE001 (a bug: one sentence back, keep serving)
                send(
                    {
                        "id": request.get("id") if isinstance(request, dict) else None,
                        "error": f"meshing failed ({type(error).__name__}: {error})",
                    }
                )


if __name__ == "__main__":
    serve()
