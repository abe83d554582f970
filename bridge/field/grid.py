"""Sampling a field on the regular grid of mesh_export's FieldGrid format (the bridge's output).

The planes are computed once by whoever made the field; here only the decoder runs, chunk by
chunk, and only density, colour and -- for edited fields -- the per-step edit masks ("masks",
(B, M, steps)) are kept, so 256^3 grids fit in a few hundred MB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mesh_export import FieldGrid, grid_points

Field = Callable[[Tensor], dict[str, Tensor]]


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
) -> FieldGrid:
    """Density, colour (and edit masks) of a one-head field at the R^3 voxel centres of the box."""
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
        density.reshape(shape), rgb.reshape(*shape, 3),
        masks=None if masks is None else masks.reshape(-1, *shape),
        level=level, box_size=box_size, provenance=provenance,
    )
