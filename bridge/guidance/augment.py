"""Differentiable image augmentations for CLIP guidance: random resized crop and random perspective.

Both are one homography per image applied with `grid_sample`, so gradients reach the rendered
pixels. LENeRF's code uses crops of scale 0.8-0.95 and a perspective distortion of 0.5 with
probability 0.8; those are the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.8, 0.95)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    perspective: float = 0.5
    perspective_probability: float = 0.8


def homography(source: Tensor, target: Tensor) -> Tensor:
    """The 3x3 maps taking 4 points `source` (B, 4, 2) to `target` (B, 4, 2)."""
    x, y = source[..., 0], source[..., 1]
    u, v = target[..., 0], target[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    system = torch.cat([rows_u, rows_v], dim=1)
    rhs = torch.cat([u, v], dim=1).unsqueeze(-1)
    h = torch.linalg.solve(system, rhs).squeeze(-1)
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def warp(images: Tensor, corners: Tensor, size: tuple[int, int]) -> Tensor:
    """Resample `images` (B, C, H, W) so that the output's corners come from `corners` (B, 4, 2).

    Corners are in normalised image coordinates [-1, 1] in the order top-left, top-right,
    bottom-right, bottom-left; the output has `size` (h, w)."""
    batch = images.shape[0]
    unit = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=images.device)
    h = homography(unit.expand(batch, 4, 2), corners.to(images.device, torch.float32))
    ys = torch.linspace(-1, 1, size[0], device=images.device)
    xs = torch.linspace(-1, 1, size[1], device=images.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).view(1, -1, 3)
    mapped = grid @ h.transpose(1, 2)
    mapped = mapped[..., :2] / mapped[..., 2:].clamp_min(1e-6)
    return F.grid_sample(images, mapped.view(batch, size[0], size[1], 2), mode="bilinear", padding_mode="border", align_corners=True)


def random_corners(batch: int, config: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Corners (B, 4, 2) of a random resized crop, then perspective-jittered."""
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    low, high = config.crop_scale
    area = low + (high - low) * rand(batch)
    log_low, log_high = torch.log(torch.tensor(config.crop_ratio))
    ratio = torch.exp(log_low + (log_high - log_low) * rand(batch))
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - width) * (2 * rand(batch) - 1)
    cy = (1 - height) * (2 * rand(batch) - 1)
    unit = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    corners = torch.stack([cx, cy], -1)[:, None] + unit[None] * torch.stack([width, height], -1)[:, None]
    # Perspective as torchvision draws it: each corner moves inward by up to `perspective` / 2 of the crop.
    inward = -unit[None] * torch.stack([width, height], -1)[:, None] * (config.perspective / 2) * rand(batch, 4, 2)
    apply = (rand(batch) < config.perspective_probability).float().view(batch, 1, 1)
    return corners + apply * inward


def augment(images: Tensor, copies: int, size: tuple[int, int], config: AugmentConfig = AugmentConfig(), generator=None) -> Tensor:
    """`copies` random augmentations of every image: (B, C, H, W) -> (copies, B, C, h, w)."""
    batch = images.shape[0]
    corners = random_corners(copies * batch, config, generator)
    repeated = images.unsqueeze(0).expand(copies, *images.shape).reshape(copies * batch, *images.shape[1:])
    return warp(repeated, corners, size).view(copies, batch, images.shape[1], *size)
