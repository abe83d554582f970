"""Colour and masks on the mesh: per-vertex reads of the grid and the baked UV texture.

Baking: every texel whose centre falls in a UV triangle takes the grid's colour (trilinear) at the
matching 3D point of that triangle; the remaining texels take the colour of the nearest covered texel
(a full dilation), so bilinear filtering and mip-maps at chart borders never pull in background and
seams do not bleed.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

from .fieldgrid import FieldGrid
from .raster import cover_in_chunks
from .sampling import field_to_index, trilinear


def sample_rgb(grid: FieldGrid, points: np.ndarray) -> np.ndarray:
    """(N, 3) field points -> (N, 3) float32 colour in [0, 1] (trilinear in the rgb grid)."""
    rgb = trilinear(grid.rgb, field_to_index(points, grid.origin, grid.voxel_size))
    if grid.rgb.dtype == np.uint8:
        rgb /= 255.0
    return np.clip(rgb, 0.0, 1.0)


def sample_masks(grid: FieldGrid, points: np.ndarray) -> np.ndarray:
    """(N, 3) field points -> (N, S) float32 mask values in [0, 1], one column per edit step."""
    if grid.edit_steps == 0:
        return np.zeros((len(points), 0), dtype=np.float32)
    stacked = np.moveaxis(grid.masks, 0, -1)  # (R, R, R, S)
    values = trilinear(stacked, field_to_index(points, grid.origin, grid.voxel_size))
    return np.clip(values.reshape(len(points), -1), 0.0, 1.0)


def uv_to_pixel(uvs: np.ndarray, texture_size: int) -> np.ndarray:
    """(..., 2) uv (v up) -> (..., 2) continuous (column, row) where texel centres are integers."""
    uvs = np.asarray(uvs, dtype=np.float64)
    return np.stack([uvs[..., 0] * texture_size - 0.5, (1.0 - uvs[..., 1]) * texture_size - 0.5], axis=-1)


def bake_texture(
    grid: FieldGrid, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bake the grid's colour into a square texture.

    vertices (M, 3) field points, faces (F, 3), uvs (M, 2) in [0, 1] (v up).
    -> texture (T, T, 3) uint8 (row 0 = top, v = 1) and covered (T, T) bool (texels inside a triangle).
    """
    pixels = uv_to_pixel(uvs, texture_size)
    texture = np.zeros((texture_size, texture_size, 3), dtype=np.uint8)
    covered = np.zeros((texture_size, texture_size), dtype=bool)
    corners = vertices.astype(np.float64)
    for coverage in cover_in_chunks(pixels[faces]):  # a piece at a time: an 8192^2 texture took 8 GB at once
        inside = ((coverage.ij >= 0) & (coverage.ij < texture_size)).all(axis=1)
        face, ij, bary = coverage.face[inside], coverage.ij[inside], coverage.bary[inside]
        points = np.einsum("kc,kcj->kj", bary, corners[faces[face]])
        texture[ij[:, 1], ij[:, 0]] = np.rint(sample_rgb(grid, points) * 255.0)
        covered[ij[:, 1], ij[:, 0]] = True
    if covered.any() and not covered.all():
        nearest = distance_transform_edt(~covered, return_distances=False, return_indices=True)
        texture = texture[nearest[0], nearest[1]]
    return texture, covered


def sample_texture(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Bilinear lookup as a renderer does it: texture (T, T, C) uint8, uvs (N, 2) -> (N, C) float32 in [0, 1]."""
    size = texture.shape[0]
    pixel = uv_to_pixel(uvs, size)
    low = np.clip(np.floor(pixel).astype(np.int64), 0, size - 2)
    frac = np.clip(pixel - low, 0.0, 1.0).astype(np.float32)
    image = texture.astype(np.float32) / 255.0
    col, row = low[:, 0], low[:, 1]
    fx, fy = frac[:, 0:1], frac[:, 1:2]
    top = image[row, col] * (1 - fx) + image[row, col + 1] * fx
    bottom = image[row + 1, col] * (1 - fx) + image[row + 1, col + 1] * fx
    return top * (1 - fy) + bottom * fy
