"""Analytic field grids for the mesh_export tests (numpy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mesh_export import FieldGrid, grid_points

SIGMA_SCALE = 50.0
SURFACE_WIDTH = 0.012

Sdf = Callable[[np.ndarray], np.ndarray]
Colour = Callable[[np.ndarray], np.ndarray]


def sphere_sdf(radius: float, centre=(0.0, 0.0, 0.0)) -> Sdf:
    return lambda p: np.linalg.norm(p - np.asarray(centre), axis=-1) - radius


def union(*sdfs: Sdf) -> Sdf:
    return lambda p: np.minimum.reduce([sdf(p) for sdf in sdfs])


def linear_colour(p: np.ndarray) -> np.ndarray:
    """Colour that trilinear interpolation reproduces exactly: 0.5 + p, in [0.2, 0.8] near the origin."""
    return np.clip(0.5 + p, 0.0, 1.0)


def make_grid(
    resolution: int,
    sdf: Sdf,
    colour: Colour = linear_colour,
    masks: tuple[Callable[[np.ndarray], np.ndarray], ...] = (),
    rgb_dtype=np.float32,
    provenance: dict | None = None,
    surface_width: float = SURFACE_WIDTH,
) -> FieldGrid:
    """EG3D-like raw sigma (+50 inside, -50 outside, level 0) of `sdf` sampled at voxel centres;
    `surface_width` sets how sharp the step is (the embedded prior: 0.012 field units)."""
    points = grid_points(resolution).astype(np.float64)
    shape = (resolution,) * 3
    density = (SIGMA_SCALE * np.tanh(-sdf(points) / surface_width)).reshape(shape).astype(np.float32)
    rgb = colour(points).reshape(*shape, 3)
    rgb = np.rint(rgb * 255).astype(np.uint8) if rgb_dtype == np.uint8 else rgb.astype(rgb_dtype)
    stacked = np.stack([m(points).reshape(shape) for m in masks]) if masks else np.zeros((0, *shape))
    return FieldGrid(
        density=density,
        rgb=rgb,
        masks=stacked.astype(np.float16),
        level=0.0,
        box_size=1.0,
        box_centre=np.zeros(3),
        provenance=provenance or {"source": "tests"},
    )
