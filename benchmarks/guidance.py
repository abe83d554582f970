"""CLIP guidance with the bundled head CLIP on held-out ProcHead renders.

- attr_top1: zero-shot accuracy, the right prompt among all values of one attribute (eye colour
  among the eye colours, ...), averaged over `ZERO_SHOT_ATTRIBUTES`; per attribute as well.
- relevance_iou: for eyes, hair, mouth and nose, the relevance map of the part's mask prompt
  (its prompt ensemble with `PSEUDO_LABEL_OPTIONS` and the head's silhouette, the way the edit
  engine asks) thresholded at
  its best level, IoU against the ground-truth 2D part mask, averaged over held-out 96x96 renders
  from random views; relevance_iou_one_level uses one level for all maps (the best one, reported
  as relevance_level), which is what a pseudo-label without ground truth can rely on.
  `relevance_iou_variants` shows the other pseudo-label paths side by side (without the
  refinement with the image, on the model's own token grid, ...), and
  `relevance_iou_token_grid_bound` what a perfect map made of 8-pixel tokens (the model's patches
  at 96^2) or 4-pixel tokens (the 2x finer grid) could reach.
- relevance_ms: one map for a 224x224 input image (resized to the model's 96x96), this machine;
  relevance_ms_pseudo_label the same with the edit engine's options (`PSEUDO_LABEL_OPTIONS`: best
  prompt, 2x finer tokens, refinement with the image);
  `relevance_ms_vit_b32` the same for a ViT-B/32 (random weights: the cost does not depend on them).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from bridge.guidance.captions import mask_prompt_ensemble
from bridge.guidance.clip import BUNDLED, ClipModel, import_open_clip, load_clip
from bridge.guidance.headclip import EVAL_SEED, read_metadata, render_views
from bridge.guidance.metrics import attribute_accuracy, best_threshold_iou, relevance_iou
from bridge.guidance.relevance import PSEUDO_LABEL_OPTIONS, relevance_maps
from bridge.images import heatmap, save_png, sheet
from bridge.prior.analytic import PART_IDS

PARTS = ("eyes", "hair", "mouth", "nose")
FIGURE = Path("out/benchmarks/guidance_relevance.png")
BENCHMARK_SEED = EVAL_SEED + 1  # held-out heads other than those watched during training


def _time_map(clip: ClipModel, repeats: int, **options) -> float:
    image = torch.rand(1, 3, 224, 224)
    relevance_maps(clip, image, "eyes", **options)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        relevance_maps(clip, image, "eyes", **options)
        best = min(best, time.perf_counter() - started)
    return 1000 * best


def token_grid_bound(parts: torch.Tensor, cell: int) -> dict:
    """The best relevance_iou any map made of `cell`-pixel tokens can reach: each part's true mask
    averaged over the token grid, up-sampled bilinearly like a relevance map, best threshold."""
    bound = {}
    for part in PARTS:
        masks = parts == PART_IDS[part]
        masks = masks[masks.flatten(1).any(dim=1)]
        pooled = torch.nn.functional.avg_pool2d(masks.float()[:, None], cell)
        maps = torch.nn.functional.interpolate(pooled, size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        low, high = maps.flatten(1).min(1).values.view(-1, 1, 1), maps.flatten(1).max(1).values.view(-1, 1, 1)
        bound[part] = round(best_threshold_iou((maps - low) / (high - low).clamp_min(1e-8), masks)["iou"], 4)
    return bound


def relevance_figure(clip: ClipModel, images: torch.Tensor, parts: torch.Tensor, path: Path) -> Path:
    """One row per head: the render, then for each part its ground-truth mask and relevance map."""
    rows = []
    for image, part_map in zip(images, parts):
        row = [image]
        for part in PARTS:
            truth = (part_map == PART_IDS[part]).float()
            foreground = (part_map > 0).float()[None]
            relevance = relevance_maps(clip, image[None], mask_prompt_ensemble(part), foreground=foreground, **PSEUDO_LABEL_OPTIONS)[0]
            row += [truth.expand(3, -1, -1), heatmap(relevance)]
        rows += row
    return save_png(sheet(rows, columns=1 + 2 * len(PARTS)), path)


def run(quick: bool = False) -> dict:
    clip = load_clip(BUNDLED)
    views = render_views(24 if quick else 120, 1, 96, seed=BENCHMARK_SEED)
    images = views.float_images()
    accuracy = attribute_accuracy(clip, images, views.params)
    parts = views.parts.long()
    ensemble = {p: mask_prompt_ensemble(p) for p in PARTS}
    model_tokens = {**PSEUDO_LABEL_OPTIONS, "token_scale": 1, "shifts": 2, "with_foreground": True}
    variants = {
        "default": (ensemble, {**PSEUDO_LABEL_OPTIONS, "with_foreground": True}),
        "default_without_refinement": (ensemble, {**PSEUDO_LABEL_OPTIONS, "refine": 0, "with_foreground": True}),
        "default_without_foreground": (ensemble, PSEUDO_LABEL_OPTIONS),
        "ensemble_mean_foreground": (ensemble, {**PSEUDO_LABEL_OPTIONS, "prompt_choice": "mean", "with_foreground": True}),
        "model_tokens_2x2_shifts_refined": (ensemble, model_tokens),
        "model_tokens_2x2_shifts": (ensemble, {**model_tokens, "refine": 0}),
    }
    ious = {name: relevance_iou(clip, images, parts, prompts, **options) for name, (prompts, options) in variants.items()}
    figure = relevance_figure(clip, images[:4], parts[:4], FIGURE)
    b32 = ClipModel(import_open_clip().create_model("ViT-B-32"), import_open_clip().get_tokenizer("ViT-B-32"), "ViT-B-32 (random)")
    return {
        "attr_top1": round(accuracy["attr_top1"], 4),
        "attr_top1_per_attribute": {k: round(v, 4) for k, v in accuracy["per_attribute"].items()},
        "relevance_iou": {part: round(r["iou"], 4) for part, r in ious["default"].items()},
        "relevance_iou_one_level": {part: round(r["iou_one_level"], 4) for part, r in ious["default"].items()},
        "relevance_level": {part: round(r["level"], 2) for part, r in ious["default"].items()},
        "relevance_iou_variants": {name: {part: round(r["iou"], 4) for part, r in result.items()} for name, result in ious.items()},
        "relevance_iou_token_grid_bound": {f"{cell}px": token_grid_bound(parts, cell) for cell in (8, 4)},
        "relevance_ms": round(_time_map(clip, 3 if quick else 10), 1),
        "relevance_ms_pseudo_label": round(_time_map(clip, 3 if quick else 10, **PSEUDO_LABEL_OPTIONS), 1),
        "relevance_ms_vit_b32": round(_time_map(b32, 1 if quick else 3), 1),
        "images": len(views),
        "figure": str(figure),
        "clip_training": read_metadata().get("training", {}).get("command", ""),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "quick": quick,
    }
