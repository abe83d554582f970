"""EditModules on disk, and the edit library that lists them.

An EditModule is one trained edit: a folder holding `edit.safetensors` (the tensors of the
mapper, attention field and, for geometry edits, the deformation network) and `edit.json`
(format, prompts, module sizes, the identity of the generator and of the CLIP it was trained
with -- by SHA-256 --, hyper-parameters and training figures). A module only fits the generator
it was trained on; loading checks that and says so in one sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bridge.errors import BridgeError
from bridge.field.weights import file_sha256
from bridge.lenerf.modules import EditModules, ModuleConfig

FORMAT = "text-edit/lenerf-edit"
FORMAT_VERSION = 1
TENSORS, METADATA = "edit.safetensors", "edit.json"
BUNDLED_LIBRARY = Path(__file__).parent / "library"


class EditModuleError(BridgeError):
    """An edit module that is missing, damaged, or made for another generator."""


@dataclass(frozen=True)
class EditSpec:
    """What an edit does: the edit prompt, the mask prompt, and how the field may change."""

    edit: str
    mask: str
    geometry: bool = False
    """Train the deformation network and let the density change (e.g. "open mouth")."""
    image_prompt_sha256: str | None = None
    """Set when the edit target was a reference picture instead of the text `edit`."""

    @property
    def texture_only(self) -> bool:
        return not self.geometry


@dataclass
class EditModule:
    spec: EditSpec
    modules: EditModules
    generator_sha256: str
    clip: dict = field(default_factory=dict)
    """{"source": ..., "sha256": ...} of the CLIP used in training."""
    info: dict = field(default_factory=dict)
    """Training command, config, figures."""

    @classmethod
    def untrained(cls, spec: EditSpec, generator, generator_sha256: str) -> "EditModule":
        """Freshly initialised modules for `generator`: the identity edit (the mapper's residual is
        zero) with the attention field's starting mask. Exercises the plumbing, not an edit."""
        return cls(
            spec, EditModules(ModuleConfig.for_generator(generator, deformation=spec.geometry)), generator_sha256, {"source": "none"}
        )

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: t.detach().cpu().contiguous() for name, t in self.modules.state_dict().items()}
        save_file(state, str(folder / TENSORS))
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec": self.spec.__dict__,
            "modules": self.modules.config.to_dict(),
            "generator_sha256": self.generator_sha256,
            "clip": self.clip,
            "sha256": file_sha256(folder / TENSORS),
            **self.info,
        }
        (folder / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path, generator_sha256: str | None = None, device: str | torch.device = "cpu") -> "EditModule":
        """Read and check a module folder; with `generator_sha256`, refuse modules of other generators."""
        folder = Path(folder)
        metadata = read_metadata(folder)
        tensors = folder / TENSORS
        if not tensors.is_file():
            raise EditModuleError(f"The edit module {folder} has no {TENSORS}; train it again or copy the whole folder.")
        if metadata.get("sha256") and file_sha256(tensors) != metadata["sha256"]:
            raise EditModuleError(f"{tensors} does not match its checksum (damaged or replaced); train the edit again.")
        if generator_sha256 and metadata.get("generator_sha256") != generator_sha256:
            raise EditModuleError(
                f"The edit in {folder.name} was trained for another generator; "
                "train it again for this one with `python -m bridge train-edit`."
            )
        try:
            spec = EditSpec(**metadata["spec"])
            modules = EditModules(ModuleConfig(**metadata["modules"]))
            modules.load_state_dict(load_file(str(tensors), device=str(device)))
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError, OSError) as error:
            reason = str(error).splitlines()[0][:160]
            raise EditModuleError(f"The edit module {folder} cannot be read ({reason}); train it again.") from None
        info = {
            k: v
            for k, v in metadata.items()
            if k not in {"format", "format_version", "spec", "modules", "generator_sha256", "clip", "sha256"}
        }
        return cls(spec, modules.to(device).eval(), metadata["generator_sha256"], metadata.get("clip", {}), info)


def read_metadata(folder: Path) -> dict:
    path = Path(folder) / METADATA
    if not path.is_file():
        raise EditModuleError(f"No edit module at {folder} (looked for {path}); check the path or train the edit.")
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EditModuleError(f"{path} is not valid JSON ({error}); train the edit again.") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise EditModuleError(f"{path} does not describe an edit module; check the path.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise EditModuleError(
            f"{path} has format version {metadata.get('format_version')}, this bridge reads version {FORMAT_VERSION}; train the edit again."
        )
    return metadata


@dataclass(frozen=True)
class LibraryEntry:
    name: str
    folder: Path
    edit: str = ""
    mask: str = ""
    geometry: bool = False
    problem: str | None = None
    """Why the module cannot be used (None when it can)."""


class EditLibrary:
    """Edit modules in sub-folders of one or more roots (the bundled library first)."""

    def __init__(self, *roots: Path, generator_sha256: str | None = None):
        self.roots = [Path(r) for r in roots] or [BUNDLED_LIBRARY]
        self.generator_sha256 = generator_sha256

    def entries(self) -> list[LibraryEntry]:
        found = []
        for root in self.roots:
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if (p / METADATA).is_file()):
                try:
                    metadata = read_metadata(folder)
                    spec = metadata.get("spec", {}) if isinstance(metadata, dict) else None
                    if not (isinstance(spec, dict) and all(isinstance(spec.get(k, ""), str) for k in ("edit", "mask"))):
                        raise EditModuleError(
                            f"{folder / METADATA} does not describe an edit (its spec is not the prompts); train it again"
                        )
                    problem = None
                    if self.generator_sha256 and metadata.get("generator_sha256") != self.generator_sha256:
                        problem = "trained for another generator"
                    found.append(
                        LibraryEntry(folder.name, folder, spec.get("edit", ""), spec.get("mask", ""), bool(spec.get("geometry")), problem)
                    )
                except EditModuleError as error:  # one odd folder is one unusable entry, never a broken library
                    found.append(LibraryEntry(folder.name, folder, problem=str(error)))
        return found

    def load(self, name: str, device: str | torch.device = "cpu") -> EditModule:
        for entry in self.entries():
            if entry.name == name:
                return EditModule.load(entry.folder, self.generator_sha256, device)
        names = ", ".join(e.name for e in self.entries()) or "none"
        raise EditModuleError(f"No edit named {name!r} in the library (available: {names}).")
