"""Loading CLIP models through open_clip, from every source a user may have, never over the network.

A source is one string:

- ``bundled`` -- the small head CLIP shipped with the project (`HEADCLIP_DIR`), trained on ProcHead;
- ``local-dir:/path/folder`` -- open_clip's folder layout (open_clip_config.json + weights file);
- ``ARCH=/path/weights`` -- an open_clip architecture name and a weights file (.safetensors/.bin/.pt),
  e.g. ``ViT-B-32=/models/open_clip_model.safetensors``;
- ``ARCH@TAG`` -- an open_clip pretrained tag already in open_clip's cache (or `cache_dir`), e.g.
  ``ViT-B-32@laion2b_s34b_b79k``; it is looked up offline and never downloaded.

All of them end in `open_clip.create_model`, the same code path for the bundled model and real
weights. Every problem a user can fix is a `ClipLoadError` with one sentence naming the file that
was looked for and how to get it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.errors import BridgeError
from bridge.torch_compat import make_torchvision_importable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported: never download

HEADCLIP_DIR = Path(__file__).parent / "assets" / "headclip"
BUNDLED = "bundled"
HEADCLIP_FORMAT = "text-edit/headclip"
"""The `text_edit.format` of a CLIP folder written by `train-clip` (trained on ProcHead captions)."""
GET_WEIGHTS_HINT = (
    "on a machine with internet run `python -m bridge fetch-clip ViT-B-32 laion2b_s34b_b79k --out DIR` "
    "(see the README, 'Your own CLIP weights') and pass --clip local-dir:DIR"
)


class ClipLoadError(BridgeError):
    """CLIP weights that are missing, unreadable or made for another architecture."""


def import_open_clip():
    make_torchvision_importable()
    import open_clip

    return open_clip


@dataclass(frozen=True)
class ClipSource:
    """A parsed source string (see the module docstring)."""

    kind: str  # "local-dir", "file" or "tag"
    location: str  # folder, weights file, or pretrained tag
    architecture: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ClipSource":
        text = text.strip()
        if text == BUNDLED:
            return cls("local-dir", str(HEADCLIP_DIR))
        if text.startswith("local-dir:"):
            return cls("local-dir", text[len("local-dir:") :])
        if "=" in text:
            architecture, path = text.split("=", 1)
            return cls("file", path, architecture.strip())
        if "@" in text:
            architecture, tag = text.split("@", 1)
            return cls("tag", tag, architecture.strip())
        raise ClipLoadError(
            f"Cannot read the CLIP source {text[:80]!r}; use 'bundled', 'local-dir:FOLDER', "
            "'ARCH=WEIGHTS_FILE' or 'ARCH@TAG' (e.g. ViT-B-32=/models/clip.safetensors)."
        )

    def __str__(self) -> str:
        if self.kind == "local-dir":
            return BUNDLED if Path(self.location) == HEADCLIP_DIR else f"local-dir:{self.location}"
        return f"{self.architecture}={self.location}" if self.kind == "file" else f"{self.architecture}@{self.location}"


class ClipModel:
    """An open_clip model frozen for guidance, with its tokenizer and image preprocessing.

    `encode_image` takes images (B, 3, H, W) in [0, 1] at any size and is differentiable;
    both encoders return unit-length embeddings."""

    def __init__(self, model: torch.nn.Module, tokenizer, source: str, weights_path: Path | None = None, taught_by_captions: bool = False):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.source = source
        self.weights_path = weights_path
        self.taught_by_captions = taught_by_captions
        """Trained on the ProcHead captions (`train-clip`, the bundled one): it knows their words
        only, so prompts are read in them where they can be (`bridge.guidance.colours`)."""
        preprocess = getattr(model.visual, "preprocess_cfg", {})
        size = preprocess.get("size", model.visual.image_size)
        self.image_size = tuple(size) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.mean = torch.tensor(preprocess.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocess.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "ClipModel":
        self.model.to(device)
        return self

    def prepare(self, images: Tensor) -> Tensor:
        """[0, 1] images of any size -> the model's input size and normalisation."""
        images = images.to(self.device, torch.float32)
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        return (images - self.mean.to(images.device)) / self.std.to(images.device)

    def encode_image(self, images: Tensor) -> Tensor:
        return F.normalize(self.model.encode_image(self.prepare(images)), dim=-1)

    def encode_text(self, prompts: list[str] | tuple[str, ...]) -> Tensor:
        tokens = self.tokenizer(list(prompts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens), dim=-1)


def _checkpoint_error(what: Path, error: Exception) -> ClipLoadError:
    reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    if "size mismatch" in str(error) or "Missing key" in str(error) or "Unexpected key" in str(error):
        return ClipLoadError(
            f"The CLIP weights {what} do not fit the chosen architecture ({reason}); pick the architecture "
            "they were trained for (e.g. ViT-B-16 for ViT-B-16 weights)."
        )
    return ClipLoadError(f"Cannot read the CLIP weights {what} ({reason}); {GET_WEIGHTS_HINT}.")


def _cached_tag_file(open_clip, architecture: str, tag: str, cache_dir: str | None) -> str:
    """The weights file of a pretrained tag if it is already on disk; never downloads."""
    config = open_clip.get_pretrained_cfg(architecture, tag)
    if not config:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(architecture)) or "none"
        raise ClipLoadError(f"open_clip knows no pretrained tag {tag!r} for {architecture} (known: {tags[:200]}).")
    if config.get("hf_hub"):
        from huggingface_hub import hf_hub_download

        repo, filename = os.path.split(config["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            try:
                return hf_hub_download(repo, name, cache_dir=cache_dir, local_files_only=True)
            except Exception:  # noqa: BLE001 -- any miss means "not in the cache"
                continue
        where = cache_dir or "the Hugging Face cache (~/.cache/huggingface/hub)"
        raise ClipLoadError(f"The weights of {architecture}@{tag} ({repo}/{names[0]}) are not in {where}; {GET_WEIGHTS_HINT}.")
    url = config.get("url", "")
    path = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
    if not path.is_file():
        raise ClipLoadError(f"The weights of {architecture}@{tag} were looked for at {path} and are not there; {GET_WEIGHTS_HINT}.")
    return str(path)


def load_clip(source: str | ClipSource = BUNDLED, device: str | torch.device = "cpu", cache_dir: str | None = None) -> ClipModel:
    """Build the open_clip model of `source` with its weights, frozen, on `device`."""
    source = source if isinstance(source, ClipSource) else ClipSource.parse(source)
    open_clip = import_open_clip()
    if source.kind == "local-dir":
        folder = Path(source.location)
        config = folder / "open_clip_config.json"
        if not config.is_file():
            hint = "reinstall the add-on or re-run `python -m bridge train-clip`" if folder == HEADCLIP_DIR else GET_WEIGHTS_HINT
            raise ClipLoadError(f"No CLIP folder at {folder} (looked for {config}); {hint}.")
        try:
            described = json.loads(config.read_text())
        except (OSError, ValueError) as error:
            raise ClipLoadError(f"{config} is not valid JSON ({error}); restore the file or fetch the weights again.") from None
        made_here = described.get("text_edit") if isinstance(described, dict) else None
        taught_by_captions = isinstance(made_here, dict) and made_here.get("format") == HEADCLIP_FORMAT
        candidates = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        if not candidates:
            raise ClipLoadError(f"{folder} holds no CLIP weights (.safetensors or .bin); {GET_WEIGHTS_HINT}.")
        name, pretrained, weights = f"local-dir:{folder}", None, candidates[0]
    else:
        if source.architecture not in open_clip.list_models():
            raise ClipLoadError(
                f"open_clip has no architecture {source.architecture!r}; use a name from open_clip.list_models(), "
                "e.g. ViT-B-32 or ViT-B-16."
            )
        if source.kind == "file":
            weights = Path(source.location).expanduser()
            if not weights.is_file():
                raise ClipLoadError(f"No CLIP weights file at {weights}; {GET_WEIGHTS_HINT}.")
        else:
            weights = Path(_cached_tag_file(open_clip, source.architecture, source.location, cache_dir))
        name, pretrained, taught_by_captions = source.architecture, str(weights), False
    try:
        model = open_clip.create_model(name, pretrained=pretrained, device=device, cache_dir=cache_dir)
        tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
    except ClipLoadError:
        raise
    except Exception as error:  # noqa: BLE001 -- open_clip raises many types for a bad file
        raise _checkpoint_error(weights, error) from None
    return ClipModel(model, tokenizer, str(source), weights, taught_by_captions)


def save_clip_folder(model: torch.nn.Module, model_config: dict, preprocess_config: dict, folder: Path, metadata: dict) -> Path:
    """Write `model` as an open_clip folder (loadable as local-dir:FOLDER): open_clip_config.json
    with our metadata under "text_edit", and float16 open_clip_model.safetensors."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        name: (t.detach().to(torch.float16) if t.is_floating_point() else t.detach()).contiguous().cpu()
        for name, t in model.state_dict().items()
    }
    weights = folder / "open_clip_model.safetensors"
    save_file(state, str(weights), metadata={"format": "open_clip state dict", "dtype": "float16"})
    config = {"model_cfg": model_config, "preprocess_cfg": preprocess_config, "text_edit": metadata}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
