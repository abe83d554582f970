"""What the bridge's own trained models share on disk: a folder with `X.safetensors` (tensors) and
`X.json` (format, version, generator, checksum, training record), and the resumable checkpoint of
their trainers (`checkpoint.safetensors`, the optimiser's state, `checkpoint.json` with the step,
the settings and the loss history).

The open edit model (`bridge/lenerf/open_model.py`) and the image encoder
(`bridge/invert/encoder.py`) are such folders; their trainers checkpoint through here.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bridge.errors import BridgeError
from bridge.field.weights import file_sha256

CHECKPOINT = "checkpoint"
FREE_ON_RESUME = ("time_limit_minutes",)
"""Settings a resumed run may change (a run stopped on time goes on with another time limit)."""


def read_metadata(
    folder: Path, metadata_name: str, tensors_name: str, form: str, version: int, generator_sha256: str | None, error, hint: str
) -> dict:
    """The checked metadata of a model folder: JSON of format `form` and `version`, made for
    `generator_sha256` (when given), whose tensor file matches its checksum; else `error` (a
    BridgeError class) with one sentence ending in `hint`."""
    path = Path(folder) / metadata_name
    if not path.is_file():
        raise error(f"No {_kind(form)} at {folder} (looked for {path}); {hint}.")
    try:
        metadata = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as reason:
        raise error(f"{path} is not valid JSON ({reason}); {hint}.") from None
    if not isinstance(metadata, dict) or metadata.get("format") != form or metadata.get("format_version") != version:
        raise error(f"{path} is not a {_kind(form)} this bridge reads (format {form} version {version}).")
    if generator_sha256 and metadata.get("generator_sha256") != generator_sha256:
        raise error(f"The {_kind(form)} in {folder} was trained for another generator; {hint} for this generator.")
    tensors = Path(folder) / tensors_name
    try:
        matches = tensors.is_file() and file_sha256(tensors) == metadata.get("sha256")
    except OSError:
        matches = False
    if not matches:
        raise error(f"{tensors} is missing or does not match its checksum (damaged or replaced); {hint}.")
    return metadata


def _kind(form: str) -> str:
    return form.split("/")[-1].replace("-", " ")


def save_checkpoint(folder: Path, module: nn.Module, optimiser: torch.optim.Optimizer, step: int, config, history: list) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(folder / f"{CHECKPOINT}.safetensors"))
    torch.save(optimiser.state_dict(), folder / f"{CHECKPOINT}_optimiser.pt")
    state = {"step": step, "config": _settings(config), "history": history}
    (folder / f"{CHECKPOINT}.json").write_text(json.dumps(state) + "\n")


def load_checkpoint(folder: Path, module: nn.Module, optimiser: torch.optim.Optimizer, config) -> tuple[int, list] | None:
    """Restore module and optimiser from `folder`'s checkpoint -> (step, history); None when there
    is none. A checkpoint made with other settings is refused in one sentence."""
    meta = Path(folder) / f"{CHECKPOINT}.json"
    if not meta.is_file():
        return None
    state = json.loads(meta.read_text())
    found = {k: v for k, v in (state.get("config") or {}).items() if k not in FREE_ON_RESUME}
    if found != _settings(config):
        raise BridgeError(
            f"The checkpoint in {folder} was made with other settings; use a new --out folder or the same settings to resume."
        )
    device = next(module.parameters()).device
    module.load_state_dict(load_file(str(Path(folder) / f"{CHECKPOINT}.safetensors"), device=str(device)))
    optimiser.load_state_dict(torch.load(Path(folder) / f"{CHECKPOINT}_optimiser.pt", weights_only=True))
    return state["step"], state["history"]


def _settings(config) -> dict:
    return {k: v for k, v in json.loads(json.dumps(asdict(config))).items() if k not in FREE_ON_RESUME}
