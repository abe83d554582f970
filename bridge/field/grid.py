"""Sampling a field on the regular grid of mesh_export's FieldGrid format (the bridge's output).

The planes are computed once by whoever made the field; here only the decoder runs, chunk by
chunk, and only density, colour and -- for edited fields -- the per-step edit masks ("masks",
(B, M, steps)) are kept, so 256^3 grids fit in a few hundred MB.

`sample_grid` evaluates the field only where the mesh needs it (`sparse=True`, the default): a
coarse lattice every STRIDE voxels, then every voxel of the lattice cells the surface crosses, then
-- until nothing changes -- every voxel of the cells around any fine cell the surface crosses whose
corners (or whose one-voxel band, which colour and mask lookups on the surface read) are not all
evaluated yet. So the surface is followed wherever it goes from where the coarse pass saw it (an
ear, the inside of an open mouth), and marching cubes sees the dense grid's values in every cell
the surface crosses: the same mesh. Voxels left out take the trilinear interpolation of the
lattice, which has the lattice's sign there (no surface crosses those cells). A piece of surface
that never crosses a lattice cell edge and touches no other surface (a closed blob smaller than
STRIDE voxels floating alone) is the one thing it can miss; `sparse=False` evaluates every voxel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mesh_export import FieldGrid, grid_points
from mesh_export.surface import EG3D_BORDER_FRACTION

Field = Callable[[Tensor], dict[str, Tensor]]


STRIDE = 4
"""Voxels between the coarse lattice's samples."""
MAX_ROUNDS = 256
SLAB_PLANES = 32
"""Voxel planes filled at a time (bounds the fill's temporaries to a slab of the grid)."""


@torch.no_grad()
def sample_grid(
    field: Field,
    resolution: int,
    level: float,
    box_size: float = 1.0,
    provenance: dict[str, Any] | None = None,
    chunk: int = 1 << 18,
    device: torch.device | str = "cpu",
    on_progress: Callable[[float], None] | None = None,
    sparse: bool = True,
) -> FieldGrid:
    """Density, colour (and edit masks) of a one-head field at the R^3 voxel centres of the box."""
    if sparse and resolution >= 4 * STRIDE:
        return SparseSampler(field, resolution, level, box_size, chunk, device, on_progress).grid(provenance)
    points = grid_points(resolution, box_size)
    density = np.empty(len(points), dtype=np.float32)
    rgb = np.empty((len(points), 3), dtype=np.float32)
    masks: np.ndarray | None = None
    for start in range(0, len(points), chunk):
        batch = torch.from_numpy(points[start : start + chunk]).to(device).unsqueeze(0)
        out = field(batch)
        density[start : start + chunk] = out["sigma"][0, :, 0].float().cpu().numpy()
        rgb[start : start + chunk] = out["rgb"][0].float().clamp(0, 1).cpu().numpy()
        if "masks" in out:
            if masks is None:
                masks = np.empty((out["masks"].shape[-1], len(points)), dtype=np.float16)
            masks[:, start : start + chunk] = out["masks"][0].T.float().clamp(0, 1).cpu().numpy()
        if on_progress:
            on_progress(min(1.0, (start + chunk) / len(points)))
    shape = (resolution,) * 3
    return FieldGrid.from_arrays(
        density.reshape(shape),
        rgb.reshape(*shape, 3),
        masks=None if masks is None else masks.reshape(-1, *shape),
        level=level,
        box_size=box_size,
        provenance=provenance,
    )


def _over_cells(a: Tensor, combine) -> Tensor:
    """(N, N, N) bool -> (N-1)^3: `combine` (| or &) over the eight corners of each cell."""
    a = combine(a[:-1], a[1:])
    a = combine(a[:, :-1], a[:, 1:])
    return combine(a[:, :, :-1], a[:, :, 1:])


def _crossed_cells(density: Tensor, level: float) -> Tensor:
    """(R-1)^3 bool: cells of the (R, R, R) grid whose eight corners are not all on one side of level."""
    above = density > level
    return _over_cells(above, torch.logical_or) & ~_over_cells(above, torch.logical_and)


def _cell_corners_and_band(cells: Tensor) -> Tensor:
    """(R, R, R) bool: the corners of `cells` ((R-1)^3) and every voxel next to one (a one-voxel band)."""
    padded = torch.zeros([n + 2 for n in cells.shape], dtype=torch.bool)
    padded[1:-1, 1:-1, 1:-1] = cells
    voxels = _over_cells(padded, torch.logical_or)
    for axis in range(3):
        grown = voxels.clone()
        grown.narrow(axis, 1, grown.shape[axis] - 1).logical_or_(voxels.narrow(axis, 0, voxels.shape[axis] - 1))
        grown.narrow(axis, 0, grown.shape[axis] - 1).logical_or_(voxels.narrow(axis, 1, voxels.shape[axis] - 1))
        voxels = grown
    return voxels


class SparseSampler:
    """The coarse-to-fine, surface-following evaluation of `sample_grid(sparse=True)`.

    Lattices every 8 (256^3 and up), 4 and 2 voxels: each finer lattice is evaluated only inside
    the cells of the coarser one the surface crosses, and every voxel only inside the crossed cells
    of the finest. Voxel indices run over an extended grid of (cells * coarsest + 1)^3 covering the
    R^3 grid, so every lattice's cells are blocks of voxels (samples past the box read the field
    outside it, as a ray would); the FieldGrid is the first R^3 of it."""

    def __init__(
        self,
        field: Field,
        resolution: int,
        level: float,
        box_size: float,
        chunk: int,
        device: torch.device | str,
        on_progress: Callable[[float], None] | None,
    ):
        self.field, self.resolution, self.level, self.chunk = field, resolution, level, chunk
        self.device, self.on_progress, self.box_size = device, on_progress, box_size
        self.strides = (2 * STRIDE, STRIDE, 2) if resolution >= 192 else (STRIDE, 2)
        coarsest = self.strides[0]
        size = -(-(resolution - 1) // coarsest) * coarsest + 1
        step = box_size / resolution
        self.axis = torch.tensor(-box_size / 2 + step * (np.arange(size) + 0.5), dtype=torch.float32)
        self.evaluated = torch.zeros((size,) * 3, dtype=torch.bool)
        self.values: Tensor | None = None  # (size, size, size, channels): sigma, rgb, masks
        self.steps = 0
        self.rounds = 0
        self.fraction = 0.0

    def _evaluate(self, want: Tensor) -> int:
        """Evaluate the field at the voxels of `want` not evaluated yet; how many there were."""
        index = torch.nonzero(want & ~self.evaluated)
        for start in range(0, len(index), self.chunk):
            part = index[start : start + self.chunk]
            points = torch.stack([self.axis[part[:, 0]], self.axis[part[:, 1]], self.axis[part[:, 2]]], dim=-1)
            out = self.field(points.to(self.device)[None])
            masks = out.get("masks")
            columns = [out["sigma"][0].float(), out["rgb"][0].float().clamp(0, 1)]
            if masks is not None:
                columns.append(masks[0].float().clamp(0, 1))
            values = torch.cat(columns, dim=-1).cpu()
            if self.values is None:
                self.steps = 0 if masks is None else masks.shape[-1]
                self.values = torch.zeros((*self.evaluated.shape, values.shape[-1]), dtype=torch.float32)
            self.values[part[:, 0], part[:, 1], part[:, 2]] = values
            self._progress(self.fraction)  # a cancel is seen between chunks
        self.evaluated |= want
        return len(index)

    def _voxels(self, cells: Tensor, stride: int, every: int = 1) -> Tensor:
        """(size, size, size) bool: the voxels (those on the `every`-lattice) of the cells of the
        `stride`-lattice in `cells`, both ends of each cell included."""
        up = cells
        for axis in range(3):
            up = up.repeat_interleave(stride, dim=axis)
            up = torch.cat([up, up.narrow(axis, up.shape[axis] - 1, 1)], dim=axis)  # the far end of the last cell
            earlier = torch.zeros_like(up)
            earlier.narrow(axis, 1, up.shape[axis] - 1).copy_(up.narrow(axis, 0, up.shape[axis] - 1))
            on_axis = torch.zeros(up.shape[axis], dtype=torch.bool)
            on_axis[::stride] = True  # a lattice voxel also ends the cell before it
            keep = torch.zeros(up.shape[axis], dtype=torch.bool)
            keep[::every] = True
            view = [1, 1, 1]
            view[axis] = -1
            up = (up | (earlier & on_axis.view(view))) & keep.view(view)
        return up

    def _progress(self, fraction: float) -> None:
        self.fraction = min(1.0, fraction)
        if self.on_progress:
            self.on_progress(self.fraction)

    def _crossed(self, stride: int) -> Tensor:
        return _crossed_cells(self.values[::stride, ::stride, ::stride, 0], self.level)

    def _fill_from(self, stride: int, channels: int | None = None) -> None:
        """Voxels not evaluated take the trilinear interpolation of the `stride`-lattice (in the
        first `channels` channels only, if given), one slab of lattice cells at a time so that no
        temporary is the size of the grid (a 512^3 grid's values are 3 GB)."""
        values = self.values[..., :channels]
        lattice = values[::stride, ::stride, ::stride]
        size, cells = self.evaluated.shape[0], lattice.shape[0] - 1
        per_slab = max(1, SLAB_PLANES // stride)
        for first in range(0, cells, per_slab):
            last = min(first + per_slab, cells)
            low, high = first * stride, last * stride + 1
            slab = F.interpolate(
                lattice[first : last + 1].permute(3, 0, 1, 2)[None], size=(high - low, size, size), mode="trilinear", align_corners=True
            )[0].permute(1, 2, 3, 0)
            target = values[low:high]
            target.copy_(torch.where(self.evaluated[low:high, ..., None], target, slab))

    def grid(self, provenance: dict[str, Any] | None) -> FieldGrid:
        coarsest, finest = self.strides[0], self.strides[-1]
        lattice = torch.zeros_like(self.evaluated)
        lattice[::coarsest, ::coarsest, ::coarsest] = True
        self._evaluate(lattice)
        self._fill_from(coarsest)
        for level, stride in enumerate(self.strides[:-1]):
            self._evaluate(self._voxels(self._crossed(stride), stride, every=self.strides[level + 1]))
            self._progress(0.1 + 0.2 * (level + 1) / len(self.strides))
        self._fill_from(finest, channels=1)  # the density, for finding the surface; colour and masks off it stay coarse
        total = self.evaluated.numel()
        for self.rounds in range(1, MAX_ROUNDS + 1):  # voxel by voxel, following the surface
            needed = _cell_corners_and_band(_crossed_cells(self._density_as_meshed(), self.level))
            if not self._evaluate(needed):
                break
            self._progress(0.3 + 0.7 * 20 * self.evaluated.sum().item() / total)  # a head's band is under 5%
        else:  # the surface kept growing: evaluate the rest, so the mesh is still the dense one
            self._evaluate(torch.ones_like(self.evaluated))
        self._progress(1.0)
        r = self.resolution
        fraction = float(self.evaluated[:r, :r, :r].float().mean())
        provenance = {
            **(provenance or {}),
            "sampling": {"kind": "sparse", "lattices": list(self.strides), "evaluated": round(fraction, 4), "rounds": self.rounds},
        }
        density, rgb, masks = self._arrays()
        return FieldGrid.from_arrays(density, rgb, masks=masks, level=self.level, box_size=self.box_size, provenance=provenance)

    def _density_as_meshed(self) -> Tensor:
        """The density with the voxels mesh_export clears at the grid's border (EG3D's neck cut,
        surface.EG3D_BORDER_FRACTION) set outside: the cap it makes there is a surface to follow too."""
        r = self.resolution
        border = min(max(int(round(EG3D_BORDER_FRACTION * r)), 0), r // 2 - 1)
        density = self.values[..., 0].clone()
        outside = self.level - 1.0
        for axis in range(3):
            density.narrow(axis, 0, border).fill_(outside)
            density.narrow(axis, r - border, density.shape[axis] - (r - border)).fill_(outside)
        return density

    def _arrays(self, planes: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The FieldGrid's density (float32), rgb (uint8) and masks (float16), a slab at a time."""
        r = self.resolution
        density = self.values[:r, :r, :r, 0].contiguous().numpy()
        rgb = np.empty((r, r, r, 3), dtype=np.uint8)
        masks = None if self.steps == 0 else np.empty((self.steps, r, r, r), dtype=np.float16)
        for start in range(0, r, planes):
            slab = self.values[start : min(start + planes, r), :r, :r]
            rgb[start : start + planes] = (slab[..., 1:4].clamp(0, 1) * 255).round_().to(torch.uint8).numpy()
            if masks is not None:
                masks[:, start : start + planes] = slab[..., 4:].clamp(0, 1).half().permute(3, 0, 1, 2).numpy()
        return density, rgb, masks
