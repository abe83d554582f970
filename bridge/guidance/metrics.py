"""Measures of a CLIP model on ProcHead renders: zero-shot attribute accuracy and relevance IoU."""

from __future__ import annotations

import torch
from torch import Tensor

from bridge.guidance.captions import ZERO_SHOT_ATTRIBUTES, zero_shot_prompts
from bridge.guidance.clip import ClipModel
from bridge.guidance.relevance import relevance_maps
from bridge.prior.analytic import PART_IDS
from bridge.prior.params import describe


@torch.no_grad()
def attribute_accuracy(clip: ClipModel, images: Tensor, params: Tensor, attributes=ZERO_SHOT_ATTRIBUTES, batch: int = 64) -> dict:
    """Zero-shot top-1: for each attribute, the right value's prompt among all its values' prompts.

    Heads whose value is not nameable (a size in the middle third) are left out of that attribute.
    -> {"attr_top1": mean over attributes, "per_attribute": {name: accuracy}}."""
    embeddings = torch.cat([clip.encode_image(images[i : i + batch]) for i in range(0, images.shape[0], batch)])
    truth = [describe(p) for p in params]
    per_attribute = {}
    for attribute in attributes:
        prompts = zero_shot_prompts(attribute)
        values = list(prompts)
        text = clip.encode_text([prompts[v] for v in values])
        rows = [i for i, t in enumerate(truth) if t[attribute] in prompts]
        if not rows:
            continue
        predicted = (embeddings[rows] @ text.T).argmax(dim=1)
        correct = [values[int(p)] == truth[i][attribute] for p, i in zip(predicted, rows)]
        per_attribute[attribute] = sum(correct) / len(correct)
    return {"attr_top1": sum(per_attribute.values()) / max(len(per_attribute), 1), "per_attribute": per_attribute}


def threshold_ious(maps: Tensor, masks: Tensor, levels: int = 19) -> Tensor:
    """IoU of every map (N, H, W) in [0, 1] thresholded at each of `levels` evenly spaced levels
    against boolean `masks` -> (levels, N)."""
    rows = []
    for level in torch.linspace(0.05, 0.95, levels).tolist():
        predicted = maps >= level
        intersection = (predicted & masks).flatten(1).sum(1).float()
        union = (predicted | masks).flatten(1).sum(1).float().clamp_min(1)
        rows.append(intersection / union)
    return torch.stack(rows)


def best_threshold_iou(maps: Tensor, masks: Tensor, levels: int = 19) -> dict:
    """Mean IoU with each map at its own best level ("iou"), and with one level for the whole
    set, the best such level ("iou_one_level", "level")."""
    ious = threshold_ious(maps, masks, levels)
    per_level = ious.mean(dim=1)
    best = int(per_level.argmax())
    return {
        "iou": float(ious.max(dim=0).values.mean()),
        "iou_one_level": float(per_level[best]),
        "level": float(torch.linspace(0.05, 0.95, levels)[best]),
    }


def relevance_iou(
    clip: ClipModel,
    images: Tensor,
    parts: Tensor,
    prompts: dict[str, list[str] | str],
    batch: int = 16,
    with_foreground: bool = False,
    **options,
) -> dict:
    """Relevance maps of each part's prompt(s) against the ground-truth part masks.

    images (N, 3, H, W) [0, 1], parts (N, H, W) part ids; images without the part are skipped.
    `with_foreground`: give the maps the head's silhouette (what a render's opacity gives the
    edit engine).
    -> {part: best_threshold_iou(...)}."""
    result = {}
    for part, prompt in prompts.items():
        masks = parts == PART_IDS[part]
        keep = masks.flatten(1).any(dim=1)
        if not keep.any():
            continue
        chosen = images[keep]
        foreground = (parts[keep] > 0).float() if with_foreground else None
        maps = torch.cat(
            [
                relevance_maps(
                    clip, chosen[i : i + batch], prompt, foreground=None if foreground is None else foreground[i : i + batch], **options
                )
                for i in range(0, chosen.shape[0], batch)
            ]
        )
        result[part] = best_threshold_iou(maps, masks[keep])
    return result
