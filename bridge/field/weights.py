"""Generator weights on disk: `NAME.safetensors` (tensors only) beside `NAME.json` (metadata).

Both are plain data: safetensors cannot carry code, and the JSON holds the generator config, a
format version, the SHA-256 of the tensor file, and whatever the producer adds (training command,
metrics). Loading checks all of it and names the file and the fix in one sentence when something
is wrong.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bridge.errors import WeightsError
from bridge.field.generator import GeneratorConfig, TriPlaneGenerator

FORMAT = "text-edit/tri-plane-generator"
FORMAT_VERSION = 1


def metadata_path(weights_path: Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_mismatch(expected: dict, given: dict) -> str:
    """Names missing from `given`, unexpected in it, or of the wrong shape; "" when they fit."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong_shape = sorted(n for n in set(expected) & set(given) if tuple(expected[n].shape) != tuple(given[n].shape))
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
        if names:
            problems.append(f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
    return "; ".join(problems)


def save_generator(generator: TriPlaneGenerator, path: Path, extra: dict | None = None) -> dict:
    """Write NAME.safetensors and NAME.json; returns the metadata written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in generator.state_dict().items()}
    for target in (path, metadata_path(path)):  # a folder there would take one of the pair and refuse the other
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(target))
    weights, described = path.with_name(f".partial-{path.name}"), path.with_name(f".partial-{metadata_path(path).name}")
    try:  # both written under temporary names, then moved into place: never half a pair
        save_file(state, str(weights))
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": generator.config.to_dict(),
            "sha256": file_sha256(weights),
            **(extra or {}),
        }
        described.write_text(json.dumps(metadata, indent=2) + "\n")
        os.replace(weights, path)
        os.replace(described, metadata_path(path))
    finally:
        weights.unlink(missing_ok=True)
        described.unlink(missing_ok=True)
    return metadata


def read_metadata(path: Path, hint: str) -> dict:
    meta_file = metadata_path(path)
    if not Path(path).is_file():
        raise WeightsError(f"The weights file {path} does not exist; {hint}.")
    if not meta_file.is_file():
        raise WeightsError(f"The metadata file {meta_file} is missing beside {path}; {hint}.")
    try:
        metadata = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"The metadata file {meta_file} is not valid JSON ({error.msg}); {hint}.") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise WeightsError(f"{meta_file} does not describe tri-plane generator weights; {hint}.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{meta_file} has format version {metadata.get('format_version')}, this bridge reads version {FORMAT_VERSION}; {hint}."
        )
    return metadata


def load_generator(
    path: Path, hint: str = "re-create it or point the bridge at another file", device: str | torch.device = "cpu"
) -> tuple[TriPlaneGenerator, dict]:
    """Load weights + metadata written by `save_generator`. `hint` finishes every error sentence."""
    path = Path(path)
    metadata = read_metadata(path, hint)
    if metadata.get("sha256") and file_sha256(path) != metadata["sha256"]:
        raise WeightsError(f"The weights file {path} does not match its checksum (damaged or replaced); {hint}.")
    try:
        config = GeneratorConfig.from_dict(metadata["config"])
        with torch.device("meta"):  # shapes only: a config far larger than its file allocates nothing
            expected = TriPlaneGenerator(config).state_dict()
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise WeightsError(f"The generator config in {metadata_path(path)} is invalid ({reason}); {hint}.") from None
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise WeightsError(f"The weights file {path} cannot be read ({error}); {hint}.") from None
    problems = state_mismatch(expected, state)
    if problems:
        raise WeightsError(f"The weights in {path} do not fit its config ({problems}); {hint}.")
    generator = TriPlaneGenerator(config)
    generator.load_state_dict(state)
    return generator.to(device).eval().requires_grad_(False), metadata
