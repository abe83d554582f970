"""What the bridge's own trained models share on disk: a folder with `X.safetensors` (tensors) and
`X.json` (format, version, generator, checksum, training record), and the resumable checkpoint of
their trainers (`checkpoint.safetensors`, the optimiser's state, `checkpoint.json` with the step,
the settings and the loss history).

The open edit model (`bridge/lenerf/open_model.py`) and the image encoder
(`bridge/invert/encoder.py`) are such folders; their trainers (`ResumableTrainer`) share the fit
loop, the checkpoints and the check that a resumed run's data was made with its settings.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn

from bridge.errors import BridgeError
from bridge.field.weights import file_sha256
from mesh_export.files import write_whole

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


def write_model_folder(folder: Path, tensors_name: str, metadata_name: str, module: nn.Module, metadata: dict) -> Path:
    """A model folder: the module's tensors (written whole or not at all), then its metadata with their checksum."""
    folder = Path(folder)
    write_atomically(folder / tensors_name, module.state_dict())
    metadata = {**metadata, "sha256": file_sha256(folder / tensors_name)}
    (folder / metadata_name).write_text(json.dumps(metadata, indent=2) + "\n")
    return folder


def write_atomically(path: Path, tensors: dict[str, Tensor]) -> None:
    """A safetensors file that is there whole or not at all (a data shard, a model's tensors)."""
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    write_whole(path, lambda file: file.write(data))


def read_shard(path: Path) -> dict[str, Tensor]:
    """A data shard's tensors, or one sentence when the file is damaged (it is made again once deleted)."""
    try:
        return load_file(str(path))
    except Exception:  # noqa: BLE001 -- safetensors raises its own errors for cut or foreign files
        raise BridgeError(f"The data file {path} is damaged; delete it and run the command again (it is made again).") from None


def shard_path(folder: Path, index: int) -> Path:
    """Where a trainer keeps data shard `index` of its run folder."""
    return Path(folder) / "data" / f"shard_{index:05d}.safetensors"


def check_data_settings(folder: Path, wanted: dict, write: bool = True) -> None:
    """Training data on disk in `folder`/data must come from the settings `wanted`: a resumed run may
    not mix two kinds. The first run records them (where `write`: one process of several)."""
    path = Path(folder) / "data" / "settings.json"
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = None
        if found != json.loads(json.dumps(wanted)):
            raise BridgeError(f"The data in {path.parent} was made with other settings; use a new --out folder or the same settings.")
    elif write:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(wanted) + "\n")
        partial.replace(path)


@dataclass
class TrainingProgress:
    phase: str
    done: int
    total: int
    seconds: float
    losses: dict[str, float]


class ResumableTrainer:
    """The fit loop of the bridge's one-command trainers. A subclass sets `module` (what is
    checkpointed), `optimiser`, `config` (with `steps`, `learning_rate`, `checkpoint_every`,
    `time_limit_minutes`), `step` and `history`, and makes one step in `train_step`."""

    HISTORY_EVERY = 100
    rank = 0
    """Only process 0 of several writes checkpoints."""

    module: nn.Module
    optimiser: torch.optim.Optimizer
    step: int
    history: list[dict]

    def train_step(self) -> dict[str, float]:
        raise NotImplementedError

    def learning_rate(self) -> float:
        """The cosine schedule from `config.learning_rate` to zero over `config.steps`."""
        return self.config.learning_rate * 0.5 * (1 + math.cos(math.pi * self.step / self.config.steps))

    def set_learning_rate(self) -> None:
        for group in self.optimiser.param_groups:
            group["lr"] = self.learning_rate()

    def save_checkpoint(self, folder: Path) -> None:
        if self.rank == 0:
            save_checkpoint(folder, self.module, self.optimiser, self.step, self.config, self.history)

    def resume(self, folder: Path) -> bool:
        restored = load_checkpoint(folder, self.module, self.optimiser, self.config)
        if restored is None:
            return False
        self.step, self.history = restored
        return True

    def fit(
        self,
        folder: Path,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Train to `steps` (or the time limit); False when stopped early (the checkpoint keeps it)."""
        started = time.perf_counter()
        c = self.config
        self.module.train()
        try:
            while self.step < c.steps:
                if should_stop() or (c.time_limit_minutes and time.perf_counter() - started > 60 * c.time_limit_minutes):
                    self.save_checkpoint(folder)
                    return False
                figures = self.train_step()
                if self.step % self.HISTORY_EVERY == 0 or self.step == c.steps:
                    self.history.append({"step": self.step, **{k: round(v, 5) for k, v in figures.items()}})
                if self.step % c.checkpoint_every == 0:
                    self.save_checkpoint(folder)
                if on_progress:
                    on_progress(TrainingProgress("fit", self.step, c.steps, time.perf_counter() - started, figures))
            self.save_checkpoint(folder)
            return True
        finally:
            self.module.eval()


def _kind(form: str) -> str:
    return form.split("/")[-1].replace("-", " ")


def save_checkpoint(folder: Path, module: nn.Module, optimiser: torch.optim.Optimizer, step: int, config, history: list) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / f"{CHECKPOINT}.safetensors", module.state_dict())
    write_whole(folder / f"{CHECKPOINT}_optimiser.pt", lambda file: torch.save(optimiser.state_dict(), file))
    state = {"step": step, "config": _settings(config), "history": history}
    write_whole(folder / f"{CHECKPOINT}.json", lambda file: file.write((json.dumps(state) + "\n").encode()))


def load_checkpoint(folder: Path, module: nn.Module, optimiser: torch.optim.Optimizer, config) -> tuple[int, list] | None:
    """Restore module and optimiser from `folder`'s checkpoint -> (step, history); None when there
    is none. A checkpoint made with other settings is refused in one sentence."""
    meta = Path(folder) / f"{CHECKPOINT}.json"
    if not meta.is_file():
        return None
    damaged = (
        f"The checkpoint in {folder} is damaged or incomplete; delete its checkpoint files (or use a new --out folder) to start again."
    )
    try:
        state = json.loads(meta.read_text())
        found = {k: v for k, v in (state.get("config") or {}).items() if k not in FREE_ON_RESUME}
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        raise BridgeError(damaged) from None
    if found != _settings(config):
        raise BridgeError(
            f"The checkpoint in {folder} was made with other settings; use a new --out folder or the same settings to resume."
        )
    device = next(module.parameters()).device
    try:
        module.load_state_dict(load_file(str(Path(folder) / f"{CHECKPOINT}.safetensors"), device=str(device)))
        optimiser.load_state_dict(torch.load(Path(folder) / f"{CHECKPOINT}_optimiser.pt", weights_only=True))
        return int(state["step"]), list(state["history"])
    except Exception:  # noqa: BLE001 -- a missing file, a cut safetensors, another model's tensors, a broken record
        raise BridgeError(damaged) from None


def _settings(config) -> dict:
    return {k: v for k, v in json.loads(json.dumps(asdict(config))).items() if k not in FREE_ON_RESUME}
