"""Colour and masks on the mesh: per-vertex reads of the grid and the baked UV texture.

Baking: every texel whose centre falls in a UV triangle takes the grid's colour (trilinear) at the
matching 3D point of that triangle; the remaining texels take the colour of the nearest covered texel
(a full dilation), so bilinear filtering and mip-maps at chart borders never pull in background and
seams do not bleed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


LAYOUT_MAX_SIZE = 2048
"""Textures up to this size can be kept as a TextureLayout (~40 bytes per texel); larger ones are
baked a rasterised piece at a time (an 8192^2 layout would be 2.7 GB)."""


@dataclass(frozen=True, eq=False)
class TextureLayout:
    """Where a mesh's texels lie on its surface, which depends on the mesh and its UVs only: a grid
    with other colours on the same surface is baked from it without rasterising again.

    texels: (K,) int64 flat index (row * size + column) of each covered texel, each once (where
    triangles share a texel, the last one's point, as a bake writes them); points: (K, 3) float64
    field points; fill: (size * size,) int32, for every texel the flat index of the nearest covered
    texel (None when all or none are covered)."""

    size: int
    texels: np.ndarray
    points: np.ndarray
    fill: np.ndarray | None


def _covered_pieces(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(flat texel indices, field points) of the covered texels, a rasterised piece at a time, in triangle order."""
    pixels = uv_to_pixel(uvs, size)
    corners = vertices.astype(np.float64)
    for coverage in cover_in_chunks(pixels[faces]):
        inside = ((coverage.ij >= 0) & (coverage.ij < size)).all(axis=1)
        face, ij, bary = coverage.face[inside], coverage.ij[inside], coverage.bary[inside]
        yield ij[:, 1] * size + ij[:, 0], np.einsum("kc,kcj->kj", bary, corners[faces[face]])


def _nearest_covered(covered: np.ndarray) -> np.ndarray | None:
    """(T, T) bool -> (T * T,) int32 flat index of the nearest covered texel, or None if there is nothing to fill."""
    if not covered.any() or covered.all():
        return None
    rows, columns = distance_transform_edt(~covered, return_distances=False, return_indices=True)
    return (rows * covered.shape[1] + columns).astype(np.int32).ravel()


def _colours(grid: FieldGrid, points: np.ndarray) -> np.ndarray:
    return np.rint(sample_rgb(grid, points) * 255.0)


def texture_layout(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, size: int) -> TextureLayout:
    """The TextureLayout of a mesh (vertices (M, 3) field points, faces (F, 3), uvs (M, 2)) for a size^2 texture."""
    pieces = list(_covered_pieces(vertices, faces, uvs, size))
    texels = np.concatenate([t for t, _ in pieces]) if pieces else np.zeros(0, np.int64)
    points = np.concatenate([p for _, p in pieces]) if pieces else np.zeros((0, 3))
    owner = np.full(size * size, -1, dtype=np.int64)
    owner[texels] = np.arange(len(texels))  # the last triangle to cover a texel owns it, as in a bake
    kept = owner[owner >= 0]
    return TextureLayout(size, texels[kept], points[kept], _nearest_covered((owner >= 0).reshape(size, size)))


def bake_with(layout: TextureLayout, grid: FieldGrid) -> np.ndarray:
    """The grid's colour baked through a layout -> (size, size, 3) uint8 (row 0 = top)."""
    texture = np.zeros((layout.size * layout.size, 3), dtype=np.uint8)
    texture[layout.texels] = _colours(grid, layout.points)
    if layout.fill is not None:
        texture = texture[layout.fill]
    return texture.reshape(layout.size, layout.size, 3)


def bake_texture(grid: FieldGrid, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture_size: int) -> np.ndarray:
    """Bake the grid's colour into a square texture: vertices (M, 3) field points, faces (F, 3),
    uvs (M, 2) in [0, 1] (v up) -> (T, T, 3) uint8 (row 0 = top, v = 1). A piece at a time: memory
    follows the texture, not its coverage."""
    texture = np.zeros((texture_size * texture_size, 3), dtype=np.uint8)
    covered = np.zeros(texture_size * texture_size, dtype=bool)
    for texels, points in _covered_pieces(vertices, faces, uvs, texture_size):
        texture[texels] = _colours(grid, points)
        covered[texels] = True
    fill = _nearest_covered(covered.reshape(texture_size, texture_size))
    if fill is not None:
        texture = texture[fill]
    return texture.reshape(texture_size, texture_size, 3)


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
