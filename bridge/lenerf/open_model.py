"""The open-vocabulary edit model: any edit prompt on any mask prompt, with no training per prompt.

Two networks per generator, trained once (`bridge.lenerf.open_trainer`), both without a single
edit prompt:

- `DeltaMapper` (after DeltaEdit, CVPR 2023): a latent residual conditioned on a direction in
  CLIP space. It is trained *text-free*, on pairs of the generator's own heads: given w_i and
  the unit direction d = normalise(E_I(I_j) - E_I(I_i)) between their pictures' CLIP embeddings,
  predict w_j - w_i. CLIP's image and text spaces agree far better on differences than on
  positions, so at edit time a text prompt is read as an image-space direction: from the mean of
  the training pictures to those CLIP retrieves for it (`retrieved_direction`); a reference picture
  gives d = normalise(E_I(picture) - mean E_I of the generator's heads).
- `PromptMaskField` (the attention field conditioned on the mask prompt, after LERF's queried
  feature fields): every point gets an embedding g(F(x), x) from its plane features and position;
  a mask prompt t becomes a query q = W E_T(t) and m = sigmoid(g . q + b(t)). It learns from CLIP
  relevance pseudo-labels of many part prompts on the generator's renders (never from ground-truth
  labels, which users' generators do not have).

`OpenEditModel.edit(...)` binds one (edit, mask) pair into a `PromptEdit`, which has the shape of
an `EditModule` (spec, modules.mapper.target, modules.attention, modules.deformation), so
`bridge.lenerf.apply.apply_edits` fuses it with `lenerf/fusion.py` like any trained module, in
stacks with them too. Geometry edits take the mask as max(mask of the source, mask of the target):
a closed mouth is found only once opened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from bridge.errors import BridgeError
from bridge.field.layers import normalize_2nd_moment, softplus
from bridge.field.weights import file_sha256
from bridge.guidance.captions import mask_prompt_ensemble
from bridge.guidance.colours import edit_prompt_for
from bridge.guidance.instructions import canonical_mask, changes_shape
from bridge.guidance.losses import NEUTRAL_PROMPTS
from bridge.guidance.relevance import logit_scale
from bridge.lenerf.edit_module import EditSpec
from bridge.lenerf.modules import level_groups, positional_encoding
from bridge.model_files import read_metadata, write_model_folder

FORMAT = "text-edit/open-edit-model"
FORMAT_VERSION = 1
TENSORS, METADATA = "open_edit.safetensors", "open_edit.json"
BUNDLED_OPEN_MODEL = Path(__file__).parent / "open_model"
EDIT_TEMPLATES = ("a head with {}", "a face with {}", "a portrait of someone with {}", "{}")
"""Edit prompts are read in these sentences (averaged), against the neutral prompts alone."""
MAX_PROMPT_CHARS = 300
RETRIEVED_FRACTION = 20
"""A text prompt retrieves the 1/RETRIEVED_FRACTION of the training pictures CLIP finds most like it."""
MASK_SHARPNESS = 2.0
"""An edit's mask is sigmoid(MASK_SHARPNESS * logit): the field's own sigmoid fits soft CLIP
relevance labels, so its tails say "unsure", and as a blend weight they would carry a little of the
edit onto the rest of the head. The 0.5 level (the part itself) is the field's own."""


class OpenModelError(BridgeError):
    """An open edit model that is missing, damaged or made for another generator or CLIP."""


@dataclass(frozen=True)
class OpenModelConfig:
    num_ws: int
    w_dim: int
    plane_channels: int
    clip_dim: int
    mapper_hidden: int = 512
    mapper_layers: int = 4
    mask_hidden: int = 128
    mask_layers: int = 3
    mask_embedding: int = 64
    position_frequencies: int = 4
    retrieval_heads: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class DeltaMapper(nn.Module):
    """(ws (B, num_ws, w_dim), direction (B, D) unit) -> dw (B, num_ws, w_dim), in units of
    `delta_std` (the spread of w_j - w_i over training pairs), one residual per level group."""

    def __init__(self, config: OpenModelConfig):
        super().__init__()
        self.groups = level_groups(config.num_ws)
        sizes = [config.w_dim + config.clip_dim] + [config.mapper_hidden] * (config.mapper_layers - 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], len(self.groups) * config.w_dim)
        self.clip_dim = config.clip_dim
        self.register_buffer("delta_std", torch.ones(config.w_dim))
        self.register_buffer("edit_scale", torch.ones(()))
        """The residual length a text direction is applied with at strength 1 (set after training)."""

    def forward(self, ws: Tensor, direction: Tensor) -> Tensor:
        x = torch.cat([normalize_2nd_moment(ws.mean(dim=1), dim=-1), direction * self.clip_dim**0.5], dim=-1)
        for layer in self.hidden:
            x = F.leaky_relu(layer(x), 0.2)
        groups = self.out(x).view(ws.shape[0], len(self.groups), -1) * self.delta_std
        return torch.cat([groups[:, i : i + 1].expand(-1, b - a, -1) for i, (a, b) in enumerate(self.groups)], dim=1)


class PromptMaskField(nn.Module):
    """Point embeddings g(features (..., C), points (..., 3)) -> (..., E); a prompt embedding
    (B, D) -> query (B, E + 1); mask = sigmoid(g . q[:E] + q[E])."""

    def __init__(self, config: OpenModelConfig):
        super().__init__()
        self.frequencies = config.position_frequencies
        position = 3 + 6 * config.position_frequencies
        sizes = [config.plane_channels + position] + [config.mask_hidden] * (config.mask_layers - 1) + [config.mask_embedding]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.query = nn.Linear(config.clip_dim, config.mask_embedding + 1)

    def embed_points(self, features: Tensor, points: Tensor) -> Tensor:
        x = torch.cat([features, positional_encoding(points, self.frequencies)], dim=-1)
        for layer in self.layers[:-1]:
            x = softplus(layer(x))
        return self.layers[-1](x)

    def logits(self, features: Tensor, points: Tensor, query: Tensor) -> Tensor:
        """features (..., C), points (..., 3), query (..., E + 1) -> (..., 1)."""
        g = self.embed_points(features, points)
        return (g * query[..., :-1]).sum(dim=-1, keepdim=True) / g.shape[-1] ** 0.5 + query[..., -1:]

    def forward(self, features: Tensor, points: Tensor, query: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(features, points, query))


class _BoundMapper(nn.Module):
    """The mapper with one edit direction fixed: the `target` an EditStep asks for."""

    def __init__(self, mapper: DeltaMapper, direction: Tensor):
        super().__init__()
        self.mapper, self.direction = mapper, direction

    def target(self, ws: Tensor, strength: float = 1.0) -> Tensor:
        dw = self.mapper(ws, self.direction.to(ws)[None].expand(ws.shape[0], -1))
        return ws + strength * self.mapper.edit_scale * dw


class _BoundAttention(nn.Module):
    """The mask field with one mask prompt fixed, in the form `EditedField` calls attention fields."""

    def __init__(self, field: PromptMaskField, embedding: Tensor, geometry: bool):
        super().__init__()
        self.field, self.geometry = field, geometry
        self.register_buffer("query", field.query(embedding[None]).detach(), persistent=False)

    def embed(self, ws_source: Tensor, ws_target: Tensor) -> Tensor:
        return self.query.to(ws_source).expand(ws_source.shape[0], -1)

    def forward(self, source_features: Tensor, source_points: Tensor, target_features: Tensor, points: Tensor, latent: Tensor) -> Tensor:
        mask = self._mask(source_features, source_points, latent)
        if self.geometry:
            mask = torch.maximum(mask, self._mask(target_features, points, latent))
        return mask

    def _mask(self, features: Tensor, points: Tensor, query: Tensor) -> Tensor:
        return torch.sigmoid(MASK_SHARPNESS * self.field.logits(features, points, query))


@dataclass
class _PromptModules:
    mapper: _BoundMapper
    attention: _BoundAttention
    deformation: None = None


@dataclass
class PromptEdit:
    """One (edit, mask) pair bound to the open model: usable wherever an EditModule is."""

    spec: EditSpec
    modules: _PromptModules
    source: str = "open model"
    note: str | None = None
    """A sentence for the user when the prompt was read otherwise than typed (`read_in_captions`)."""


def check_prompt(text: str, what: str, limit: int = MAX_PROMPT_CHARS) -> str:
    """The prompt with its whitespace folded and control characters left out, or one sentence."""
    text = " ".join("".join(c for c in str(text) if c.isprintable() or c.isspace()).split())
    if not text:
        raise BridgeError(f"The {what} prompt is empty; type what to change (e.g. 'green eyes') and where (e.g. 'eyes').")
    if len(text) > limit:
        raise BridgeError(f"The {what} prompt has {len(text)} characters; shorten it to at most {limit}.")
    return text


@torch.no_grad()
def edit_text_embedding(clip, edit: str) -> Tensor:
    """The edit prompt's unit text embedding (D,), read in the sentence templates and averaged."""
    return F.normalize(clip.encode_text([t.format(edit) for t in EDIT_TEMPLATES]).mean(0), dim=-1)


@torch.no_grad()
def text_direction(clip, edit: str) -> Tensor:
    """The unit CLIP direction from a neutral head to `edit` (D,) (models without retrieval pictures)."""
    target = edit_text_embedding(clip, edit)
    neutral = F.normalize(clip.encode_text(list(NEUTRAL_PROMPTS)).mean(0), dim=-1)
    return F.normalize(target - neutral, dim=-1).cpu()


@torch.no_grad()
def mask_embedding(clip, mask: str) -> Tensor:
    """The mask prompt's unit text embedding (D,): the mean over the prompt and every caption phrase
    that names it ("eyes" -> "eyes", "blue eyes", "big eyes", ...; `mask_prompt_ensemble`), the
    ensemble its relevance labels were made with. A small CLIP trained on captions reads a bare
    part word much like any other (cosine 0.9-1.0 between "eyes", "hair" and "nose"); the phrases
    it was trained on it tells apart. Synonyms the part table knows are read as their part
    ("hairstyle" -> "hair", `canonical_mask`)."""
    words = canonical_mask(" ".join(mask.split()))
    for article in ("the ", "her ", "his ", "their ", "its "):
        if words.lower().startswith(article):
            words = words[len(article) :]
            break
    return F.normalize(clip.encode_text(mask_prompt_ensemble(words)).mean(0), dim=-1).cpu()


class OpenEditModel(nn.Module):
    def __init__(self, config: OpenModelConfig, generator_sha256: str = "", clip: dict | None = None, info: dict | None = None):
        super().__init__()
        self.config = config
        self.mapper = DeltaMapper(config)
        self.mask = PromptMaskField(config)
        self.register_buffer("mean_image_embedding", torch.zeros(config.clip_dim))
        self.register_buffer("image_embeddings", torch.zeros(config.retrieval_heads, config.clip_dim))
        """CLIP embeddings of the training heads' pictures: a text prompt is read as the direction from
        their mean to those CLIP finds most like it (`retrieved_direction`)."""
        self.generator_sha256 = generator_sha256
        self.clip_identity = clip or {}
        self.info = info or {}

    @classmethod
    def for_generator(cls, generator, clip_dim: int, generator_sha256: str = "", **sizes) -> "OpenEditModel":
        config = OpenModelConfig(generator.num_ws, generator.config.w_dim, generator.config.plane_channels, clip_dim, **sizes)
        return cls(config, generator_sha256)

    def forward(self, ws: Tensor, direction: Tensor, features: Tensor, points: Tensor, mask_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Both networks at once (training): ws (B, N, W), directions (B, D) -> dw (B, N, W); mask
        samples features (M, S, C), points (M, S, 3), prompt embeddings (M, D) -> logits (M, S, 1)."""
        query = self.mask.query(mask_embeddings)[:, None]
        return self.mapper(ws, direction), self.mask.logits(features, points, query)

    # --- binding prompts ---------------------------------------------------------------------

    def edit(
        self, clip, edit: str, mask: str, geometry: bool | None = None, image: Tensor | None = None, image_sha256: str | None = None
    ) -> PromptEdit:
        """A PromptEdit for an edit prompt (or a reference picture (3, H, W) in [0, 1]) on a mask prompt.
        `geometry`: whether the part's shape may change; None decides from the prompt (a prompt of
        colours only does not change shape, `changes_shape`; a picture may)."""
        mask = check_prompt(mask, "mask", 100)
        note = None
        if image is not None:
            with torch.no_grad():
                embedding = clip.encode_image(image[None].float())[0].cpu()
            direction = F.normalize(embedding - self.mean_image_embedding.cpu(), dim=-1)
            edit = " ".join(str(edit).split()) or "like the reference picture"
        else:
            edit = check_prompt(edit, "edit")
            edit, note = edit_prompt_for(clip, edit, mask)
            direction = self.retrieved_direction(clip, edit) if len(self.image_embeddings) else text_direction(clip, edit)
        if geometry is None:
            geometry = image is not None or changes_shape(edit)
        device = self.mean_image_embedding.device
        return PromptEdit(
            EditSpec(edit, mask, geometry, image_sha256),
            _PromptModules(
                _BoundMapper(self.mapper, direction.to(device)), _BoundAttention(self.mask, mask_embedding(clip, mask).to(device), geometry)
            ),
            note=note,
        )

    @torch.no_grad()
    def retrieved_direction(self, clip, edit: str) -> Tensor:
        """The unit direction (D,) from the mean training picture to the softmax-weighted mean of the
        RETRIEVED training pictures CLIP finds most like the prompt (their other attributes vary and
        average out). It is an image-space direction of the kind the mapper learnt from, where a text
        direction E_T(edit) - E_T(neutral) of a small CLIP is not (text and image deltas agree only
        roughly); the training stays text-free: text only picks pictures at edit time."""
        text = edit_text_embedding(clip, edit).to(self.image_embeddings)
        similarity = self.image_embeddings @ text
        top = similarity.topk(max(8, len(similarity) // RETRIEVED_FRACTION))
        weights = torch.softmax(logit_scale(clip) * top.values, dim=0)
        prototype = (weights[:, None] * self.image_embeddings[top.indices]).sum(dim=0)
        return F.normalize(prototype - self.image_embeddings.mean(dim=0), dim=-1).cpu()

    # --- files -------------------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "generator_sha256": self.generator_sha256,
            "clip": self.clip_identity,
        }
        return write_model_folder(folder, TENSORS, METADATA, self, {**metadata, **self.info})

    @classmethod
    def load(
        cls, folder: Path = BUNDLED_OPEN_MODEL, generator_sha256: str | None = None, device: str | torch.device = "cpu"
    ) -> "OpenEditModel":
        folder = Path(folder)
        hint = "train one with `python -m bridge train-open-edit`"
        metadata = read_metadata(folder, METADATA, TENSORS, FORMAT, FORMAT_VERSION, generator_sha256, OpenModelError, hint)
        try:
            model = cls(
                OpenModelConfig(**metadata["config"]),
                metadata.get("generator_sha256", ""),
                metadata.get("clip", {}),
                {
                    k: v
                    for k, v in metadata.items()
                    if k not in {"format", "format_version", "config", "generator_sha256", "clip", "sha256"}
                },
            )
            model.load_state_dict(load_file(str(folder / TENSORS)))
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError, OSError) as error:
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise OpenModelError(f"The open edit model in {folder} cannot be read ({reason}); train it again.") from None
        return model.to(device).eval().requires_grad_(False)

    def check_clip(self, clip) -> None:
        """Refuse a CLIP other than the one the model was trained with: its directions mean nothing here."""
        wanted = self.clip_identity.get("sha256")
        if wanted and clip.weights_path is not None and file_sha256(clip.weights_path) != wanted:
            raise OpenModelError(
                f"The open edit model was trained with the CLIP {self.clip_identity.get('source')!r}, not {clip.source!r}; "
                "use that CLIP (--clip) or train the open model with this one."
            )


ALMOST_NOTHING = 0.01
"""A CLIP gain (cosine to the edit prompt, edited minus source render) below which an edit is said
to have done almost nothing."""


@torch.no_grad()
def clip_gain(clip, before: Tensor, after: Tensor, edit: str) -> float:
    """How far an edit moved the picture toward its prompt in CLIP's eyes: cos(E_I(after), t) -
    cos(E_I(before), t), t the prompt read in the edit templates; pictures (3, H, W) in [0, 1]."""
    text = edit_text_embedding(clip, edit)
    images = clip.encode_image(torch.stack([before, after]).float())
    similarity = images @ text.to(images)
    return float(similarity[1] - similarity[0])


def describe_gain(gain: float, edit: str) -> str:
    """One sentence on a `clip_gain` for the user."""
    if gain < ALMOST_NOTHING:
        return (
            f"CLIP sees almost no move toward {edit!r} ({gain:+.3f}); raise the strength, reword the prompt "
            "or train a module for it (train-edit)."
        )
    return f"CLIP sees the head {gain:+.3f} closer to {edit!r}."
