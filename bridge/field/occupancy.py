"""Empty-space skipping for renders: where a field can have density, on a coarse grid of cells.

`Occupancy.probe` evaluates a field's raw density at the corners of CELLS^3 cells over its box; a
cell is occupied if any corner has density above EMPTY_BELOW, grown by one cell on every side (so
density between corners reaches at least a cell's width past what the corners saw). `skipping`
wraps a one-head field so that only points in occupied cells are evaluated; every other point is
empty (raw density OUTSIDE_BOX_SIGMA, zero colour, features and masks), which a render composites as
nothing. A previewed head costs the samples near it instead of every sample along every ray.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.field.renderer import evaluated_where

Field = Callable[[Tensor], dict[str, Tensor]]

CELLS = 32
EMPTY_BELOW = -8.0
"""Raw density under which a point adds nothing a picture shows (softplus(-9) ~ 1e-4 per unit)."""


class Occupancy:
    def __init__(self, occupied: Tensor, box_size: float = 1.0, outside_empty: bool = True):
        self.occupied = occupied  # (C, C, C) bool over the box, x, y, z order
        self.box_size = box_size
        self.outside_empty = outside_empty
        """Whether renders treat points outside the box as empty (RenderConfig.clamp_to_box); when
        they do not (imported EG3D generators), those points are always evaluated."""

    @classmethod
    @torch.no_grad()
    def probe(
        cls, field: Field, box_size: float = 1.0, cells: int = CELLS, device: torch.device | str = "cpu", outside_empty: bool = True
    ) -> "Occupancy":
        axis = torch.linspace(-box_size / 2, box_size / 2, cells + 1)
        corners = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)
        sigma = field(corners.to(device))["sigma"].reshape(cells + 1, cells + 1, cells + 1).float().cpu()
        dense = (sigma > EMPTY_BELOW).float()[None, None]
        occupied = F.max_pool3d(dense, 2, stride=1)  # any corner of each cell
        occupied = F.max_pool3d(occupied, 3, stride=1, padding=1)[0, 0] > 0  # and one cell around
        return cls(occupied.to(device), box_size, outside_empty)

    @property
    def fraction(self) -> float:
        return float(self.occupied.float().mean())

    def __call__(self, points: Tensor) -> Tensor:
        """points (..., 3) -> (...) bool: inside an occupied cell (points outside the box are not)."""
        cells = self.occupied.shape[0]
        index = torch.floor((points / self.box_size + 0.5) * cells).long()
        inside = ((index >= 0) & (index < cells)).all(dim=-1)
        index = index.clamp(0, cells - 1)
        hit = self.occupied.to(points.device)[index[..., 0], index[..., 1], index[..., 2]]
        return (hit & inside) if self.outside_empty else (hit | ~inside)

    def skipping(self, field: Field) -> Field:
        """`field` evaluated only in occupied cells (one head: points (1, M, 3))."""

        def evaluate(points: Tensor) -> dict[str, Tensor]:
            keep = self(points)
            if points.shape[0] != 1 or keep.all():
                return field(points)
            return evaluated_where(field, points, keep)

        return evaluate
