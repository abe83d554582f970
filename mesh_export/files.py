"""Files written whole or not at all: a full disk or a crash never leaves half a grid, mesh or head
file where the artist expects one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_whole(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Run `write` on a PATH.*.partial file and move it onto `path` when it is complete (the partial file is
    removed if writing fails). A link, a pipe or a device is written through, never replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        with path.open("wb") as file:
            write(file)
        return path
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.partial")  # two writers of one path never share it
    try:
        with partial.open("wb") as file:
            write(file)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
