"""Training the open-vocabulary edit model of one generator: one command, two phases, resumable.

1. **Data** (`make_shard`): random heads of the generator, each rendered from the front (its CLIP
   image embedding, for the mapper's pairs) and, for every `mask_every`-th head, from a random
   view whose surface points and plane features are kept with the picture. Shards of
   `shard_heads` heads are files, so an interrupted run keeps what it made; no text names an edit.
   **Labels** (`view_labels`, files of their own beside the shards, named by `LABEL_RECIPE`): the
   CLIP relevance maps of the mask vocabulary (`MASK_VOCABULARY`) in each view, as pseudo-labels of
   its pixels, with the views where CLIP cannot find a prompt's part left unlabelled for it.
2. **Fit** (`OpenTrainer`): the `DeltaMapper` regresses w_j - w_i from w_i and the unit direction
   between the two heads' image embeddings (DeltaEdit: L2 plus cosine); the `PromptMaskField`
   fits the pseudo-labels of each vocabulary prompt (BCE at the surface point and just inside).
   Every step draws its global batch from a generator seeded by (seed, step), so a resumed run
   and a run spread over processes see the same batches. Under `torchrun` (WORLD_SIZE > 1) each
   process makes every WORLD_SIZE-th shard and takes its slice of every global batch; gradients are
   averaged by DistributedDataParallel (gloo on CPU, nccl on GPU), which equals one process on the
   global batch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor

from bridge.errors import BridgeError
from bridge.field.cameras import ray_bundle
from bridge.field.renderer import VolumeRenderer
from bridge.field.triplane import sample_planes
from bridge.guidance.captions import mask_prompt_ensemble
from bridge.guidance.relevance import PSEUDO_LABEL_OPTIONS, pseudo_label, relevance_above, relevance_maps
from bridge.lenerf.open_model import OpenEditModel, mask_embedding
from bridge.model_files import ResumableTrainer, TrainingProgress, check_data_settings, read_shard, shard_path, write_atomically

MASK_VOCABULARY = ("eyes", "irises", "hair", "haircut", "mouth", "lips", "nose", "ears", "eyebrows", "skin")
"""The part prompts whose relevance the mask field learns; other wordings are answered through
their text embeddings."""
PART_OF_PROMPT = {
    "eyes": "eyes",
    "irises": "eyes",
    "hair": "hair",
    "haircut": "hair",
    "mouth": "mouth",
    "lips": "mouth",
    "nose": "nose",
    "ears": "ears",
    "eyebrows": "eyebrows",
    "skin": "skin",
}
"""Which prompts name the same part: a pixel's label goes to the part whose prompts find it most
relevant (`competing_labels`)."""
NO_BASELINE = ("eyes", "irises", "skin")
"""Prompts whose relevance is used as it is: for the rest a neutral prompt's relevance is taken off
(`relevance_above`, "a face"), which removes the eyes a small ViT finds relevant for any prompt."""
LABEL_BASELINE = "a face"


@dataclass(frozen=True)
class Contrast:
    """A prompt labelled by contrast: in each view CLIP picks the value it sees (`values`: value ->
    phrases), and the label is the relevance of that value's phrases against the other values'
    (Grad-CAM's contrastive classes: what tells "green eyes" from "blue eyes" lies in the irises,
    while a small ViT's relevance of "eyes" alone covers much of the face). In views where CLIP
    sees one of the `unseen` values (phrases too) the prompt gets no label at all: CLIP cannot
    find the part in that state (a closed mouth), and a guess there would teach the mask noise."""

    values: dict[str, tuple[str, ...]]
    unseen: dict[str, tuple[str, ...]] = field(default_factory=dict)


EYE_COLOUR_WORDS = ("brown", "blue", "green", "grey", "hazel", "amber")
MOUTH_STATES = {"open": ("an open mouth", "a wide open mouth")}
CLOSED_MOUTH = {"closed": ("a closed mouth", "closed lips")}
CONTRASTS = {
    "eyes": Contrast({c: (f"{c} eyes",) for c in EYE_COLOUR_WORDS}),
    "irises": Contrast({c: (f"{c} irises",) for c in EYE_COLOUR_WORDS}),
    "mouth": Contrast(MOUTH_STATES, CLOSED_MOUTH),
    "lips": Contrast(MOUTH_STATES, CLOSED_MOUTH),
}
"""The vocabulary prompts labelled by `Contrast` (the rest by their caption ensemble). Pseudo-label
IoU against the prior's part maps, 32 random 64^2 views: eyes 0.26 (ensemble) -> 0.69 (eye-colour
contrast); mouth 0.06 over all views, 0.92 on open mouths and 0.01-0.04 on closed ones whatever the
prompts, hence no label on closed ones (docs/open_edit.md)."""
LABEL_RECIPE = 2
"""The version of `view_labels`: labels live in data/labels_v{LABEL_RECIPE}, so a new recipe
relabels the views already rendered instead of mixing with the old labels."""
INSIDE = 0.015
"""The second labelled point of a pixel lies this far behind the surface (field units)."""
IN_FRONT = 0.03
"""With the generator at hand, a third point this far in front of the surface takes the pixel's label too."""


@dataclass(frozen=True)
class OpenTrainingConfig:
    seed: int = 0
    heads: int = 960
    shard_heads: int = 8
    mask_every: int = 3
    resolution: int = 64
    samples: int = 24
    mask_yaw: float = 60.0
    mask_pitch: float = 12.0
    steps: int = 4000
    pair_batch: int = 256
    mask_batch: int = 8192
    learning_rate: float = 1e-3
    cosine_weight: float = 1.0
    checkpoint_every: int = 250
    time_limit_minutes: float | None = None


def _distributed() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


# --- data ------------------------------------------------------------------------------------


@torch.no_grad()
def make_shard(source, clip, config: OpenTrainingConfig, index: int) -> dict[str, Tensor]:
    """Shard `index`: its heads' ws, front-view CLIP embeddings and, for its labelled heads, one
    view each (the picture, opacity, points at the surface and behind it, their mean plane features)."""
    device = source.device
    rng = torch.Generator().manual_seed(config.seed * 1_000_003 + index)
    ws = source.sample_ws(config.shard_heads, rng).to(device)
    base = source.render_config
    renderer = VolumeRenderer(replace(base, depth_samples=config.samples, importance_samples=config.samples))
    planes = source.generator.planes(ws)
    front = renderer.render(
        source.generator.field(ws), base.orbit(torch.zeros(len(ws)), torch.zeros(len(ws))), base.intrinsics(), config.resolution, ("rgb",)
    )
    shard = {"ws": ws.cpu(), "image_embedding": clip.encode_image(front["rgb"]).cpu()}
    labelled = [i for i in range(len(ws)) if (index * config.shard_heads + i) % config.mask_every == 0]
    if not labelled:
        return shard
    chosen = torch.tensor(labelled)
    yaw = (torch.rand(len(chosen), generator=rng) * 2 - 1) * config.mask_yaw
    pitch = (torch.rand(len(chosen), generator=rng) * 2 - 1) * config.mask_pitch
    poses = base.orbit(yaw, pitch)
    view = renderer.render(source.generator.field(ws[chosen.to(device)]), poses, base.intrinsics(), config.resolution, ("rgb",))
    origins, directions = ray_bundle(poses.to(device), base.intrinsics(), config.resolution)
    depth = view["depth"].flatten(2).transpose(1, 2)
    points = torch.stack([origins + directions * depth, origins + directions * (depth + INSIDE)], dim=2)  # (b, R, 2, 3)
    features = sample_planes(planes[chosen.to(device)], points.flatten(1, 2), base.box_size).mean(dim=1)
    opacity = view["opacity"][:, 0]

    shard.update(
        {
            "mask_head": chosen,
            "points": points.reshape(len(chosen), -1, 2, 3).cpu(),
            "features": features.reshape(len(chosen), -1, 2, features.shape[-1]).to(torch.float16).cpu(),
            "opacity": opacity.flatten(1).cpu(),
            "rgb": (view["rgb"] * 255).round().to(torch.uint8).cpu(),
        }
    )
    return shard


@torch.no_grad()
def view_labels(clip, rgb: Tensor, opacity: Tensor) -> tuple[Tensor, Tensor]:
    """Pseudo-labels of the vocabulary in views: rgb (V, 3, H, W) uint8, opacity (V, H * W) ->
    labels (V, K, H * W) uint8 and known (V, K) bool (False: CLIP cannot find that prompt's part
    in that view, `Contrast.unseen`)."""
    images = rgb.float() / 255
    size = tuple(images.shape[-2:])
    foreground = opacity.view(-1, *size)

    def maps(prompts, negatives=None, where=None) -> Tensor:
        chosen = slice(None) if where is None else where
        return relevance_maps(
            clip, images[chosen], list(prompts), negatives, size=size, foreground=foreground[chosen], **PSEUDO_LABEL_OPTIONS
        )

    baseline = maps([LABEL_BASELINE])
    picture = F.normalize(clip.encode_image(images), dim=-1)
    labels = torch.zeros(len(images), len(MASK_VOCABULARY), *size)
    known = torch.ones(len(images), len(MASK_VOCABULARY), dtype=torch.bool)
    for k, prompt in enumerate(MASK_VOCABULARY):
        contrast = CONTRASTS.get(prompt)
        if contrast is None:
            relevance = maps(mask_prompt_ensemble(prompt))
            labels[:, k] = pseudo_label(relevance if prompt in NO_BASELINE else relevance_above(relevance, baseline))
            continue
        groups = {**contrast.values, **contrast.unseen}
        phrases = [p for options in groups.values() for p in options]
        owner = [value for value, options in groups.items() for _ in options]
        seen = [owner[i] for i in (picture @ clip.encode_text(phrases).to(picture).T).argmax(dim=1).tolist()]
        for value, options in contrast.values.items():
            where = torch.tensor([s == value for s in seen])
            if where.any():
                others = [p for other, more in groups.items() if other != value for p in more]
                labels[where, k] = pseudo_label(maps(options, others, where))
        known[:, k] = torch.tensor([s in contrast.values for s in seen])
    return (labels.flatten(2) * 255).round().to(torch.uint8), known


def label_path(folder: Path, index: int) -> Path:
    return Path(folder) / "data" / f"labels_v{LABEL_RECIPE}" / f"labels_{index:05d}.safetensors"


DATA_SETTINGS = ("seed", "heads", "shard_heads", "mask_every", "resolution", "samples", "mask_yaw", "mask_pitch")


def make_data(source, clip, config: OpenTrainingConfig, folder: Path, on_progress=None, should_stop=lambda: False) -> bool:
    """Every shard of this process that is not on disk yet, and its labels; False when stopped early."""
    rank, world = _distributed()
    shards = -(-config.heads // config.shard_heads)
    started = time.perf_counter()
    wanted = {name: getattr(config, name) for name in DATA_SETTINGS} | {"mask_vocabulary": list(MASK_VOCABULARY)}
    check_data_settings(Path(folder), wanted, write=rank == 0)
    mine = [i for i in range(shards) if i % world == rank]
    for n, index in enumerate(mine):
        path, labels = shard_path(folder, index), label_path(folder, index)
        if path.is_file() and labels.is_file():
            continue
        if should_stop():
            return False
        if not path.is_file():
            write_atomically(path, make_shard(source, clip, config, index))
        if not labels.is_file():
            shard = read_shard(path)
            made = {}
            if "rgb" in shard:
                views, known = view_labels(clip, shard["rgb"], shard["opacity"])
                made = {"labels": views, "known": known.to(torch.uint8)}
            write_atomically(labels, made)
        if on_progress:
            on_progress(TrainingProgress("data", n + 1, len(mine), time.perf_counter() - started, {}))
    _barrier(world)
    return True


@dataclass
class OpenData:
    ws: Tensor  # (N, num_ws, w_dim)
    embeddings: Tensor  # (N, D)
    points: Tensor  # (V, R, S, 3): per labelled pixel, in front of the surface, on it, behind it
    features: Tensor  # (V, R, S, C) float16
    opacity: Tensor  # (V, R)
    labels: Tensor  # (V, K, R) uint8
    known: Tensor  # (V, K) bool: the view labels that prompt (`Contrast.unseen`)

    @classmethod
    @torch.no_grad()
    def load(cls, folder: Path, config: OpenTrainingConfig, generator=None) -> "OpenData":
        """All shards; with the `generator`, each labelled pixel also gets the point IN_FRONT of its
        surface (features computed here from the head's planes), where an opened mouth or a removed
        part is empty in the edited head and the mask must still say "mouth"."""
        count = -(-config.heads // config.shard_heads)
        shards = [read_shard(shard_path(folder, i)) for i in range(count)]
        labels = [load_file(str(label_path(folder, i))) for i in range(count)]
        labelled = [s for s in shards if "rgb" in s]
        labels = [t for t in labels if "labels" in t]
        points, features = torch.cat([s["points"] for s in labelled]), torch.cat([s["features"] for s in labelled])
        if generator is not None:
            view_ws = torch.cat([s["ws"][s["mask_head"]] for s in labelled])
            surface, inside = points[:, :, 0], points[:, :, 1]
            front = surface - (inside - surface) * (IN_FRONT / INSIDE)
            device = next(generator.parameters()).device
            box = generator.config.render.box_size
            ahead = torch.cat(
                [
                    sample_planes(generator.planes(view_ws[v : v + 8].to(device)), front[v : v + 8].to(device), box).mean(dim=1).cpu()
                    for v in range(0, len(view_ws), 8)
                ]
            )
            points = torch.cat([front[:, :, None], points], dim=2)
            features = torch.cat([ahead[:, :, None].to(features.dtype), features], dim=2)
        return cls(
            torch.cat([s["ws"] for s in shards]),
            torch.cat([s["image_embedding"] for s in shards]),
            points,
            features,
            torch.cat([s["opacity"] for s in labelled]),
            torch.cat([t["labels"] for t in labels]),
            torch.cat([t["known"] for t in labels]).bool(),
        )


# --- fit -------------------------------------------------------------------------------------


def competing_labels(labels: Tensor, known: Tensor) -> Tensor:
    """Pseudo-labels (V, K, R) of the vocabulary's prompts -> each pixel kept only for the prompts of
    the part that wins it (the highest label of any of its prompts), zero for the others; prompts a
    view does not label (`known` (V, K) False) take no part.

    A small CLIP's relevance of one prompt is often spread over the whole face ("eyes" on a head
    whose eyes it does not see); against the other parts' relevance of the same pixels (LERF
    scores a query against canonical phrases the same way) such spill loses to the part that is
    really there."""
    labels = labels * known[:, :, None].to(labels.dtype)
    parts = sorted(set(PART_OF_PROMPT.values()))
    index = torch.tensor([parts.index(PART_OF_PROMPT[p]) for p in MASK_VOCABULARY])
    by_part = torch.stack([labels[:, index == i].max(dim=1).values for i in range(len(parts))], dim=1)  # (V, P, R)
    winner = by_part.argmax(dim=1)  # (V, R)
    return labels * (winner[:, None] == index[None, :, None]).to(labels.dtype)


MAX_POSITIVE_WEIGHT = 6.0


def positive_weights(labels: Tensor, opacity: Tensor, known: Tensor) -> Tensor:
    """(K,) BCE weight of each prompt's positive labels: sqrt(negatives / positives) on the heads'
    pixels of the views that label it, within [1, MAX_POSITIVE_WEIGHT]. Unweighted, a small part's
    noisy labels leave its mask under 0.5 where it is right (the eyes' mask averaged 0.26 on the
    eyes and 0.03 on the skin)."""
    counted = (opacity > 0.5)[:, None] & known[:, :, None]  # (V, K, R)
    positive = ((labels > 127) & counted).transpose(0, 1).flatten(1).sum(dim=1).float()
    total = counted.transpose(0, 1).flatten(1).sum(dim=1).float()
    return ((total - positive) / positive.clamp_min(1)).sqrt().clamp(1.0, MAX_POSITIVE_WEIGHT)


def validation_heads(heads: int) -> int:
    """Heads kept out of the mapper's training pairs (the last ones), for its held-out figures."""
    return min(64, heads // 4)


class OpenTrainer(ResumableTrainer):
    HISTORY_EVERY = 50

    def __init__(self, model: OpenEditModel, data: OpenData, clip, config: OpenTrainingConfig):
        self.model, self.data, self.config = model, data, config
        self.module = model
        self.rank, self.world = _distributed()
        if config.pair_batch % self.world or config.mask_batch % self.world:
            raise BridgeError(
                f"The pair and mask batches ({config.pair_batch}, {config.mask_batch}) must divide by the {self.world} processes."
            )
        heads = data.ws.shape[0]
        self.validation = validation_heads(heads)
        self.train_heads = heads - self.validation
        if model.config.retrieval_heads != self.train_heads:
            raise ValueError(
                f"the model keeps {model.config.retrieval_heads} pictures for retrieval, the data has {self.train_heads} training heads"
            )
        self.labels = competing_labels(data.labels, data.known)
        self.positive_weight = positive_weights(self.labels, data.opacity, data.known)
        with torch.no_grad():
            self.prompt_embeddings = torch.stack([mask_embedding(clip, p) for p in MASK_VOCABULARY])
            model.mean_image_embedding.copy_(data.embeddings.mean(dim=0))
            model.image_embeddings.copy_(data.embeddings[: self.train_heads])
            model.mapper.delta_std.copy_(
                self._pair_deltas(torch.Generator().manual_seed(config.seed), 4096, 0, self.train_heads)[2]
                .flatten(0, 1)
                .std(dim=0)
                .clamp_min(1e-4)
            )
        self.network = model
        if self.world > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(model)
        self.optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.step = 0
        self.history: list[dict] = []

    def _pair_deltas(self, rng: torch.Generator, count: int, low: int, high: int) -> tuple[Tensor, Tensor, Tensor]:
        i = torch.randint(low, high, (count,), generator=rng)
        j = torch.randint(low, high - 1, (count,), generator=rng)
        j = j + (j >= i).long()  # never a head with itself
        direction = F.normalize(self.data.embeddings[j] - self.data.embeddings[i], dim=-1)
        return self.data.ws[i], direction, self.data.ws[j] - self.data.ws[i]

    def _mask_samples(self, rng: torch.Generator, count: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Random labelled pixels and prompts: features, points, labels, weights (the head's pixels
        of views that label the prompt), prompt indices."""
        views, rays = self.data.opacity.shape
        v = torch.randint(0, views, (count,), generator=rng)
        r = torch.randint(0, rays, (count,), generator=rng)
        k = torch.randint(0, len(MASK_VOCABULARY), (count,), generator=rng)
        weight = ((self.data.opacity[v, r] > 0.5) & self.data.known[v, k]).float()
        return (self.data.features[v, r].float(), self.data.points[v, r], self.labels[v, k, r].float() / 255, weight, k)

    def _slice(self, tensor: Tensor) -> Tensor:
        return tensor[self.rank :: self.world] if self.world > 1 else tensor

    def batch_losses(self, rng: torch.Generator) -> dict[str, Tensor]:
        c = self.config
        ws, direction, delta = (self._slice(t) for t in self._pair_deltas(rng, c.pair_batch, 0, self.train_heads))
        features, points, labels, weight, k = (self._slice(t) for t in self._mask_samples(rng, c.mask_batch))
        predicted, logits = self.network(ws, direction, features, points, self.prompt_embeddings[k])
        target = delta / self.model.mapper.delta_std
        predicted = predicted / self.model.mapper.delta_std
        samples = features.shape[1]
        weight = weight[:, None].expand(-1, samples)
        bce = F.binary_cross_entropy_with_logits(
            logits[..., 0], labels[:, None].expand(-1, samples), reduction="none", pos_weight=self.positive_weight[k][:, None]
        )
        return {
            "mapper_l2": (predicted - target).square().mean(),
            "mapper_cosine": c.cosine_weight * (1 - F.cosine_similarity(predicted.flatten(1), target.flatten(1), dim=-1)).mean(),
            "mask_bce": (bce * weight).mean(),  # a mean over the slice: equal slices average to the global batch's
        }

    def train_step(self) -> dict[str, float]:
        rng = torch.Generator().manual_seed(self.config.seed * 7919 + self.step)
        terms = self.batch_losses(rng)
        total = sum(terms.values())
        self.optimiser.zero_grad(set_to_none=True)
        total.backward()
        self.set_learning_rate()
        self.optimiser.step()
        self.step += 1
        return {name: float(value.detach()) for name, value in terms.items()}

    @torch.no_grad()
    def calibrate(self) -> dict:
        """Set the mapper's edit scale so that its residuals on held-out pairs are, on average, as
        long as the true ones (a regression to the mean shortens them), and report the held-out fit."""
        rng = torch.Generator().manual_seed(self.config.seed + 1)
        ws, direction, delta = self._pair_deltas(rng, 2048, self.train_heads, self.data.ws.shape[0])
        predicted = self.model.mapper(ws, direction)
        scale = delta.flatten(1).norm(dim=-1).mean() / predicted.flatten(1).norm(dim=-1).mean().clamp_min(1e-6)
        self.model.mapper.edit_scale.fill_(float(scale))
        cosine = F.cosine_similarity(predicted.flatten(1), delta.flatten(1), dim=-1).mean()
        return {"edit_scale": round(float(scale), 4), "heldout_pair_cosine": round(float(cosine), 4)}


# --- refining one prompt: a per-prompt module started from the open model's edit -----------------


def distil_prompt_edit(
    modules, prompt_edit, generator, sample_ws, steps: int = 300, heads: int = 4, points: int = 4096, seed: int = 0, refresh_every: int = 10
) -> dict:
    """Start LENeRF modules (`EditModules`) from the open model's edit of the same prompts: the
    latent residual mapper regresses the open mapper's target latents on random heads, and the
    attention field its masks at random points of heads (refreshed every `refresh_every` steps)
    where the source or the target has matter. No rendering and no CLIP. -> the last fit figures."""
    from bridge.lenerf.fusion import ACTIVE_SIGMA

    rng = torch.Generator().manual_seed(seed)
    box = generator.config.render.box_size
    bound = prompt_edit.modules
    optimiser = torch.optim.Adam([p for m in (modules.mapper, modules.attention) for p in m.parameters()], lr=3e-3)
    figures: dict[str, float] = {}
    for step in range(steps):
        with torch.no_grad():
            ws = sample_ws(heads, rng)
            wanted = bound.mapper.target(ws)
            if step % refresh_every == 0:  # planes are the cost: new heads and points now and then
                mask_ws, mask_wanted = ws, wanted
                at = (torch.rand(heads, points, 3, generator=rng) - 0.5) * box
                source = sample_planes(generator.planes(ws), at, box)
                target = sample_planes(generator.planes(wanted), at, box)
                active = (generator.decoder(source)["sigma"][..., 0] > ACTIVE_SIGMA) | (
                    generator.decoder(target)["sigma"][..., 0] > ACTIVE_SIGMA
                )
                query = bound.attention.embed(ws, wanted)[:, None].expand(-1, points, -1)
                wanted_mask = bound.attention(source.mean(1), at, target.mean(1), at, query)[..., 0][active]
        mapper_loss = (modules.mapper.target(ws) - wanted).square().mean()
        latent = modules.attention.embed(mask_ws, mask_wanted)[:, None].expand(-1, points, -1)
        mask = modules.attention(source.mean(1)[active], at[active], target.mean(1)[active], at[active], latent[active])[..., 0]
        mask_loss = F.binary_cross_entropy(mask.clamp(1e-5, 1 - 1e-5), wanted_mask)
        optimiser.zero_grad(set_to_none=True)
        (mapper_loss + mask_loss).backward()
        optimiser.step()
        figures = {"mapper_mse": round(float(mapper_loss.detach()), 5), "mask_bce": round(float(mask_loss.detach()), 5)}
    return figures
