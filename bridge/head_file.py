"""A head as a file (`head-from-image --out head.json`, `edit --head head.json`): its latent ws and
where it came from, JSON with a format version, for the generator it was made with."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from bridge.errors import BridgeError
from mesh_export.fieldgrid import provenance_problem
from mesh_export.files import write_whole

FORMAT = "text-edit/head"
FORMAT_VERSION = 1
MAX_BYTES = 8 << 20
MAX_LATENT_ABS = 1e6
"""Far outside any generator's w (a few units); beyond it a value is not a latent."""
MAX_DESCRIPTION_CHARS = 16384
MAX_DESCRIPTION_DEPTH = 16
"""The description rides into every grid's provenance, which is bounded (mesh_export.fieldgrid)."""


def write_head(path: Path, ws: Tensor, description: dict, generator_sha256: str) -> Path:
    path = Path(path)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator_sha256": generator_sha256,
        "description": description,
        "ws": [[round(float(v), 6) for v in row] for row in ws.tolist()],
    }
    text = (json.dumps(document) + "\n").encode()
    return write_whole(path, lambda file: file.write(text))


def read_head(path: Path, num_ws: int, w_dim: int, generator_sha256: str | None = None) -> tuple[Tensor, dict]:
    """-> ws (num_ws, w_dim), description; anything else is one sentence."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file() and not path.is_dir():  # a pipe would block (a folder fails below)
            raise OSError(f"{path} is not a regular file")
        if path.stat().st_size > MAX_BYTES:
            raise BridgeError(f"{path} is larger than any head file ({MAX_BYTES >> 20} MB); give the head file that head-from-image wrote.")
        document = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a byte-order mark
    except FileNotFoundError:
        raise BridgeError(f"No head file at {path}; make one with `python -m bridge head-from-image`.") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BridgeError(
            f"{path} is not a head file ({type(error).__name__}); make one with `python -m bridge head-from-image`."
        ) from None
    version = document.get("format_version") if isinstance(document, dict) else None
    if not isinstance(document, dict) or document.get("format") != FORMAT or type(version) is not int or version != FORMAT_VERSION:
        raise BridgeError(f"{path} is not a head file this bridge reads (format {FORMAT} version {FORMAT_VERSION}).")
    if generator_sha256 and document.get("generator_sha256") not in (None, "", generator_sha256):
        raise BridgeError(f"The head in {path} was made with another generator; make it again with this one.")
    rows = document.get("ws")
    ok = (
        isinstance(rows, list)
        and len(rows) == num_ws
        and all(
            isinstance(r, list) and len(r) == w_dim and all(type(v) in (int, float) and abs(v) <= MAX_LATENT_ABS for v in r) for r in rows
        )
    )
    if not ok:
        raise BridgeError(f"The head in {path} must hold {num_ws} rows of {w_dim} numbers within +-{MAX_LATENT_ABS:g} (ws).")
    return torch.tensor(rows, dtype=torch.float32), _description(document.get("description"), path)


def _description(description, path: Path) -> dict:
    """The head's description, if it is one a grid's provenance can carry; else one sentence."""
    if description is None:
        return {}
    problem = provenance_problem(description, MAX_DESCRIPTION_CHARS, MAX_DESCRIPTION_DEPTH)
    if problem is not None:
        raise BridgeError(f"The description in {path} {problem}; remove it or write the head again with head-from-image.")
    return description
