"""Sampling tri-plane features at 3D points, with EG3D's plane axes.

EG3D projects a point (x, y, z) onto three planes whose 2D coordinates are (x, y), (x, z) and
(z, x) -- not (y, z) for the third. Every released EG3D checkpoint was trained that way, so we
keep it. Coordinates are scaled by 2 / box_size into grid_sample's [-1, 1] range
(align_corners=False, zeros outside the box).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# For each plane, the indices of the point coordinates that become its (u, v).
PLANE_AXES = ((0, 1), (0, 2), (2, 0))


def project_onto_planes(points: Tensor) -> Tensor:
    """points (B, M, 3) -> plane coordinates (B, 3, M, 2)."""
    return torch.stack([points[..., list(axes)] for axes in PLANE_AXES], dim=1)


def sample_planes(planes: Tensor, points: Tensor, box_size: float = 1.0) -> Tensor:
    """planes (B, 3, C, H, W), points (B, M, 3) -> features (B, 3, M, C)."""
    batch, n_planes, channels, height, width = planes.shape
    uv = project_onto_planes(points) * (2.0 / box_size)
    grid = uv.reshape(batch * n_planes, 1, -1, 2)
    features = F.grid_sample(
        planes.reshape(batch * n_planes, channels, height, width),
        grid.to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return features.reshape(batch, n_planes, channels, -1).permute(0, 1, 3, 2)


def sample_plane_mean(planes: Tensor, points: Tensor, box_size: float = 1.0) -> Tensor:
    """planes (B, 3, C, H, W), points (B, M, 3) -> the mean of the three planes' features (B, M, C):
    what EG3D's decoder reads, in one reduction over grid_sample's own layout (no strided copies)."""
    batch, n_planes, channels, height, width = planes.shape
    uv = project_onto_planes(points) * (2.0 / box_size)
    features = F.grid_sample(
        planes.reshape(batch * n_planes, channels, height, width),
        uv.reshape(batch * n_planes, 1, -1, 2).to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return features.reshape(batch, n_planes, channels, -1).sum(dim=1).div_(n_planes).transpose(1, 2)
