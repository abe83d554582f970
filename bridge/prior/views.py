"""The analytic ProcHead as a renderer field, its part labels as a picture, and render PSNR."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.prior import analytic

# One colour per part label (background, skin, eyes, hair, eyebrows, nose, mouth, ears).
PART_COLOURS = torch.tensor(
    [
        [1.00, 1.00, 1.00],
        [0.93, 0.76, 0.62],
        [0.10, 0.45, 0.95],
        [0.55, 0.27, 0.07],
        [0.20, 0.20, 0.20],
        [0.95, 0.55, 0.10],
        [0.85, 0.10, 0.25],
        [0.45, 0.75, 0.35],
    ]
)


def analytic_field(params: Tensor, with_parts: bool = False) -> Callable[[Tensor], dict[str, Tensor]]:
    """The ground-truth head(s) `params` (B, P) as a renderer field: sigma, rgb (and part probabilities)."""

    def field(points: Tensor) -> dict[str, Tensor]:
        out = analytic.query(points, params.to(points.device))
        result = {"sigma": out["sigma"], "rgb": out["rgb"]}
        if with_parts:
            result["parts"] = F.one_hot(out["label"], len(analytic.PART_NAMES)).to(points.dtype)
        return result

    return field


def parts_to_colours(parts: Tensor) -> Tensor:
    """Composited part probabilities (B, K, H, W) -> a label picture (B, 3, H, W); empty pixels white."""
    label = parts.argmax(dim=1)
    label = torch.where(parts.sum(dim=1) < 0.5, torch.zeros_like(label), label)
    return PART_COLOURS.to(parts.device)[label].permute(0, 3, 1, 2)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB for images in [0, 1], (B, C, H, W) -> (B,)."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).square().flatten(1).mean(dim=1)
    return -10 * torch.log10(mse.clamp_min(1e-10))
