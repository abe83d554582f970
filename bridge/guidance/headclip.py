"""The bundled head CLIP: a small open_clip model trained contrastively on ProcHead renders.

Data: analytic ProcHead heads (parameters drawn as the prior draws them) rendered from several
views, with their part maps; captions come from the ground-truth parameters (`captions`).
Training is CLIP's symmetric contrastive loss with one change: a caption that is also true of
another image in the batch ("blue eyes" for two blue-eyed heads) counts as a positive of that
image, not a negative -- the parameters tell us exactly when that happens.

The result is an open_clip folder (open_clip_config.json + open_clip_model.safetensors), loaded
with `load_clip("bundled")` through the same open_clip code path as users' weights.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.budget import Budget, cosine_factor
from bridge.errors import BridgeError
from bridge.field.renderer import render_orbit
from bridge.guidance.captions import caption
from bridge.guidance.clip import HEADCLIP_DIR, HEADCLIP_FORMAT, ClipModel, import_open_clip, save_clip_folder
from bridge.prior.model import PRIOR_RENDER
from bridge.prior.params import describe, sample_params
from bridge.prior.views import analytic_field

HEADCLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 96, "layers": 5, "width": 128, "head_width": 32, "patch_size": 8, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
HEADCLIP_PREPROCESS = {"size": 96, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
DATA_RENDER = replace(PRIOR_RENDER, depth_samples=24, importance_samples=24)
"""Renders for CLIP data: half the prior's samples along a ray, which CLIP at 96^2 cannot tell apart."""
YAW_RANGE = (-40.0, 40.0)
PITCH_RANGE = (-12.0, 12.0)
EVAL_SEED = 1_000_003  # held-out heads and views: never drawn by training (whose seeds are small)


@dataclass
class HeadViews:
    """Rendered heads: images (N, 3, R, R) uint8, part maps (N, R, R) uint8, params (N, P), angles."""

    images: Tensor
    parts: Tensor
    params: Tensor
    yaw: Tensor
    pitch: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def float_images(self, index: Tensor | slice = slice(None)) -> Tensor:
        return self.images[index].float() / 255.0

    def save(self, path: Path, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, seed=np.array(seed), **{k: v.numpy() for k, v in asdict(self).items()})

    @classmethod
    def load(cls, path: Path) -> tuple["HeadViews", int]:
        """-> the views and the seed they were drawn from."""
        with np.load(path) as data:
            views = cls(**{k: torch.from_numpy(data[k]) for k in ("images", "parts", "params", "yaw", "pitch")})
            return views, int(data["seed"])


def render_views(
    heads: int,
    views_per_head: int,
    resolution: int,
    seed: int,
    batch: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> HeadViews:
    """Draw `heads` ProcHead heads from `seed` and render each from `views_per_head` random views."""
    generator = torch.Generator().manual_seed(seed)
    params = sample_params(heads, generator).repeat_interleave(views_per_head, dim=0)
    count = params.shape[0]
    yaw = YAW_RANGE[0] + (YAW_RANGE[1] - YAW_RANGE[0]) * torch.rand(count, generator=generator)
    pitch = PITCH_RANGE[0] + (PITCH_RANGE[1] - PITCH_RANGE[0]) * torch.rand(count, generator=generator)
    images, parts = [], []
    with torch.no_grad():
        for start in range(0, count, batch):
            if should_stop():
                raise KeyboardInterrupt
            chunk = slice(start, min(start + batch, count))
            out = render_orbit(
                analytic_field(params[chunk], with_parts=True),
                DATA_RENDER,
                yaw[chunk],
                pitch[chunk],
                resolution,
                channels=("rgb", "parts"),
                batch=chunk.stop - chunk.start,
            )
            images.append((out["rgb"].clamp(0, 1) * 255).round().to(torch.uint8))
            label = out["parts"].argmax(dim=1)
            parts.append(torch.where(out["parts"].sum(dim=1) < 0.5, torch.zeros_like(label), label).to(torch.uint8))
            if on_progress:
                on_progress(chunk.stop, count)
    return HeadViews(torch.cat(images), torch.cat(parts), params, yaw, pitch)


def cached_views(path: Path | None, **render_args) -> HeadViews:
    """`render_views`, read from / written to `path` (.npz) when given; renders are the slow part."""
    if path is not None and path.is_file():
        views, seed = HeadViews.load(path)
        size = render_args["heads"] * render_args["views_per_head"]
        if len(views) == size and views.images.shape[-1] == render_args["resolution"] and seed == render_args["seed"]:
            return views
    views = render_views(**render_args)
    if path is not None:
        views.save(path, render_args["seed"])
    return views


def build_model(config: dict = HEADCLIP_CONFIG):
    """A fresh (untrained) head CLIP and its tokenizer, from open_clip's own classes."""
    open_clip = import_open_clip()
    model = open_clip.CLIP(**config)
    model.visual.preprocess_cfg = dict(HEADCLIP_PREPROCESS)  # what create_model sets from the folder's config
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config["text_cfg"]["context_length"])
    return model, tokenizer


def caption_targets(captions, attributes: list[dict[str, str]]) -> Tensor:
    """(images, captions) 0/1 matrix: caption j is true of image i."""
    return torch.tensor([[float(c.holds_for(a)) for c in captions] for a in attributes])


def multi_positive_clip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor, targets: Tensor) -> Tensor:
    """CLIP's symmetric cross-entropy with several positives per row (targets (B, B), diagonal 1)."""
    logits = logit_scale.exp().clamp(max=100) * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    image_to_text = -(targets / targets.sum(1, keepdim=True) * logits.log_softmax(dim=1)).sum(1).mean()
    text_to_image = -(targets / targets.sum(0, keepdim=True) * logits.log_softmax(dim=0)).sum(0).mean()
    return (image_to_text + text_to_image) / 2


def training_augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Small random zoom / shift, a horizontal flip (heads are symmetric; captions name no side),
    and a random softening: the generator's renders, which this CLIP will judge, are softer than
    the analytic ones it learns from."""
    from bridge.guidance.augment import AugmentConfig, random_corners, warp

    batch = images.shape[0]
    config = AugmentConfig(crop_scale=(0.8, 1.0), perspective=0.2, perspective_probability=0.5)
    corners = random_corners(batch, config, generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    corners[flip] = corners[flip][:, [1, 0, 3, 2]]
    images = warp(images, corners, tuple(images.shape[-2:]))
    softness = torch.rand(batch, 1, 1, 1, generator=generator) * (torch.rand(batch, 1, 1, 1, generator=generator) < 0.5)
    blurred = F.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    return (1 - softness) * images + softness * blurred


@dataclass(frozen=True)
class HeadClipTrainingConfig:
    seed: int = 0
    heads: int = 3000
    views_per_head: int = 1
    resolution: int = 96
    steps: int = 3000
    batch: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 150
    time_limit_minutes: float | None = None
    eval_every: int = 250
    eval_heads: int = 64


@dataclass
class ClipProgress:
    stage: str  # "render" or "train"
    done: int
    total: int
    seconds: float
    loss: float | None = None
    eval: dict | None = None


def train_headclip(
    config: HeadClipTrainingConfig,
    out_dir: Path = HEADCLIP_DIR,
    cache: Path | None = None,
    on_progress: Callable[[ClipProgress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    command: str = "",
) -> dict:
    """Render the data (or read `cache`), train, and write the open_clip folder `out_dir`."""
    from bridge.guidance.metrics import attribute_accuracy

    started = time.perf_counter()
    report = on_progress or (lambda p: None)
    views = cached_views(
        cache,
        heads=config.heads,
        views_per_head=config.views_per_head,
        resolution=config.resolution,
        seed=config.seed,
        on_progress=lambda d, t: report(ClipProgress("render", d, t, time.perf_counter() - started)),
        should_stop=should_stop,
    )
    held_out = cached_views(
        cache.with_name(cache.stem + "-eval.npz") if cache else None,
        heads=config.eval_heads,
        views_per_head=1,
        resolution=config.resolution,
        seed=EVAL_SEED,
    )
    render_seconds = time.perf_counter() - started
    attributes = [describe(p) for p in views.params]
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    model, tokenizer = build_model()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    budget = Budget(config.steps, config.time_limit_minutes)  # training only; rendering comes on top
    step = 0

    def learning_rate(_: int) -> float:
        return cosine_factor(budget.fraction(step), warmup_fraction_done=min(1.0, (step + 1) / config.warmup_steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    history: list[dict] = []
    last_eval: dict = {}

    def evaluate() -> dict:
        model.eval()
        clip = ClipModel(model, tokenizer, "training")
        result = attribute_accuracy(clip, held_out.float_images(), held_out.params)
        model.train().requires_grad_(True)
        return result

    def write(finished: bool) -> dict:
        metadata = {
            "format": HEADCLIP_FORMAT,
            "format_version": 1,
            "family": "ProcHead",
            "training": {
                "command": command,
                "config": asdict(config),
                "steps_done": step,
                "minutes": round(budget.seconds / 60, 2),
                "render_minutes": round(render_seconds / 60, 2),
                "threads": torch.get_num_threads(),
                "finished": finished,
                "history": history,
            },
            "metrics": last_eval,
        }
        save_clip_folder(model, HEADCLIP_CONFIG, HEADCLIP_PREPROCESS, Path(out_dir), metadata)
        return metadata

    model.train()
    while not budget.exhausted(step) and not should_stop():
        index = torch.randint(0, len(views), (config.batch,), generator=generator)
        images = training_augment(views.float_images(index), generator)
        pixels = (images - 0.5) / 0.25
        captions = [caption(attributes[i], rng) for i in index.tolist()]
        targets = caption_targets(captions, [attributes[i] for i in index.tolist()])
        image_features = model.encode_image(pixels)
        text_features = model.encode_text(tokenizer([c.text for c in captions]))
        loss = multi_positive_clip_loss(image_features, text_features, model.logit_scale, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        progress = ClipProgress("train", step, config.steps, budget.seconds, loss.item())
        if step % config.eval_every == 0:
            last_eval = evaluate()
            progress.eval = last_eval
            history.append({"step": step, "loss": round(loss.item(), 4), "attr_top1": round(last_eval["attr_top1"], 4)})
            write(finished=False)
        report(progress)
    if step == 0:
        raise BridgeError("Training stopped before the first step; nothing was written.")
    last_eval = evaluate()
    model.eval()
    return write(finished=True)


def read_metadata(folder: Path = HEADCLIP_DIR) -> dict:
    return json.loads((Path(folder) / "open_clip_config.json").read_text()).get("text_edit", {})
