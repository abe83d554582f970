"""The surface of a field grid: marching cubes at the grid's level, in field coordinates.

Steps: clear EG3D's border (its fields hold junk density near the box walls) and close the surface
where it meets the cleared region, crop to the occupied block, marching cubes (scikit-image,
Lewiner), drop small connected pieces (floaters), decimate to a triangle budget (quadric
collapses, fast-simplification), orient every face outward, area-weighted vertex normals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import marching_cubes

from .fieldgrid import FieldGrid, FieldGridError

# EG3D's shape extraction clears 30 voxels of a 256^3 grid on every side.
EG3D_BORDER_FRACTION = 30.0 / 256.0
# How far below the level the cleared border is set (in the grid's own density units, at least).
OUTSIDE_MARGIN = 1.0
MAX_SURFACE_CELLS = 2_000_000
"""Cells the surface may cross before marching cubes (memory grows with them: about 0.4 kB each).
The prior's head at 64^3 crosses 4.7k (1.8%), so about 0.3M at 512^3, the largest grid; a grid of
noise crosses nearly all, and a few hundred kB of deflated noise (a 256^3 checkerboard) took 6 GB
and 38 s to mesh."""


@dataclass(frozen=True)
class SurfaceOptions:
    """border_fraction: fraction of the grid cleared on every side (EG3D: 30/256; 0 keeps it all; the
    surface is closed at the box walls either way). min_component_fraction: connected pieces whose
    area is below this fraction of the largest piece's are dropped as floaters. max_triangles:
    decimation budget, 0 = keep every triangle."""

    border_fraction: float = EG3D_BORDER_FRACTION
    min_component_fraction: float = 0.002
    max_triangles: int = 200_000


@dataclass(frozen=True)
class Surface:
    """A closed triangle mesh in field coordinates.

    vertices: (N, 3) float32; faces: (F, 3) int32, counter-clockwise seen from outside;
    normals: (N, 3) float32 unit, outward.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray


def face_normals_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3) unit face normals (zero for degenerate faces) and (F,) areas, float64."""
    v = vertices.astype(np.float64)
    cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    double_area = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(double_area, 1e-300)[:, None]
    return normals, 0.5 * double_area


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) float32 unit normals: the area-weighted mean of the adjacent face normals."""
    v = vertices.astype(np.float64)
    cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    summed = np.zeros_like(v)
    for corner in range(3):
        np.add.at(summed, faces[:, corner], cross)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    fallback = np.array([0.0, 1.0, 0.0])
    return np.where(length > 0, summed / np.maximum(length, 1e-300), fallback).astype(np.float32)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh, positive when its faces wind counter-clockwise outward."""
    v = vertices.astype(np.float64)
    v = v - v.mean(axis=0)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _occupied_block(inside: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Index slices of the smallest block holding every True voxel, or None if there is none."""
    block = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(inside.any(axis=others))
        if hit.size == 0:
            return None
        block.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(block)


def _prepared_block(grid: FieldGrid, border: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The density block around the surface, padded by one voxel of 'outside' on every side, with the
    cleared border set outside. Returns (block float32, index of block[0, 0, 0] in the grid, outside)."""
    density, level, resolution = grid.density, grid.level, grid.resolution
    kept = slice(border, resolution - border)
    inside = np.zeros(density.shape, dtype=bool)
    inside[kept, kept, kept] = density[kept, kept, kept] > level
    block = _occupied_block(inside)
    if block is None:
        raise FieldGridError(
            f"The field grid has no surface at level {level:g} (density ranges "
            f"{float(density.min()):g} to {float(density.max()):g}); check the level the bridge wrote."
        )
    outside = min(float(density.min()), level) - OUTSIDE_MARGIN
    # One voxel of real data around the occupied block (where the surface crosses), then padding.
    low = [max(s.start - 1, 0) for s in block]
    high = [min(s.stop + 1, resolution) for s in block]
    data = density[low[0] : high[0], low[1] : high[1], low[2] : high[2]].astype(np.float32)
    for axis in range(3):
        index = np.arange(low[axis], high[axis])
        cleared = (index < border) | (index >= resolution - border)
        if cleared.any():
            where = [slice(None)] * 3
            where[axis] = cleared
            data[tuple(where)] = outside
    padded = np.pad(data, 1, mode="constant", constant_values=outside)
    return padded, np.asarray(low, dtype=np.float64) - 1.0, outside


def surface_cells(block: np.ndarray, level: float, slab: int = 32) -> int:
    """How many cells of `block` (corners at its samples) the level crosses: corners on both sides.
    Counted in slabs, so the temporaries stay a few slabs of booleans."""
    count = 0
    for start in range(0, block.shape[0] - 1, slab):
        inside = block[start : start + slab + 1] > level
        some, every = inside[:-1] | inside[1:], inside[:-1] & inside[1:]
        some, every = some[:, :-1] | some[:, 1:], every[:, :-1] & every[:, 1:]
        some, every = some[:, :, :-1] | some[:, :, 1:], every[:, :, :-1] & every[:, :, 1:]
        count += int(np.count_nonzero(some & ~every))
    return count


def _drop_small_components(vertices: np.ndarray, faces: np.ndarray, min_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the connected pieces whose area is at least `min_fraction` of the largest's."""
    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count > 1:
        _, areas = face_normals_and_areas(vertices, faces)
        piece_area = np.bincount(labels[faces[:, 0]], weights=areas, minlength=count)
        keep_piece = piece_area >= min_fraction * piece_area.max()
        faces = faces[keep_piece[labels[faces[:, 0]]]]
    return _compact(vertices, faces)


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses and renumber the faces."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    if used.all():
        return vertices, faces
    new_index = np.cumsum(used) - 1
    return vertices[used], new_index[faces]


def decimate(vertices: np.ndarray, faces: np.ndarray, max_triangles: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error edge collapses down to `max_triangles` faces (no-op when already below)."""
    if max_triangles <= 0 or len(faces) <= max_triangles:
        return vertices, faces
    import fast_simplification

    points, triangles = fast_simplification.simplify(vertices.astype(np.float64), faces.astype(np.int32), target_count=int(max_triangles))
    return _compact(points.astype(np.float32), triangles.astype(np.int32))


def extract_surface(grid: FieldGrid, options: SurfaceOptions = SurfaceOptions()) -> Surface:
    """The surface of `grid` where density crosses grid.level, in field coordinates.

    Vertices are exact for voxel-centred samples: index i maps to origin + (i + 0.5) * voxel.
    Raises FieldGridError when the grid holds no surface.
    """
    border = int(round(options.border_fraction * grid.resolution))
    border = min(max(border, 0), grid.resolution // 2 - 1)
    block, block_index, _ = _prepared_block(grid, border)
    crossed = surface_cells(block, grid.level)
    if crossed > MAX_SURFACE_CELLS:
        raise FieldGridError(
            f"The field grid's surface crosses {crossed:,} cells (a head's crosses well under {MAX_SURFACE_CELLS:,}): "
            f"its density is noise at level {grid.level:g}; check the level and the density the bridge wrote."
        )
    voxel = grid.voxel_size
    vertices, faces, _, _ = marching_cubes(block, level=grid.level, allow_degenerate=False)
    # scikit-image winds faces clockwise seen from the high (inside) side's outward normal.
    faces = faces[:, ::-1].astype(np.int32)
    vertices = ((vertices + block_index + 0.5) * voxel + grid.origin).astype(np.float32)
    vertices, faces = _drop_small_components(vertices, faces, options.min_component_fraction)
    vertices, faces = decimate(vertices, faces, options.max_triangles)
    if signed_volume(vertices, faces) < 0.0:
        faces = faces[:, ::-1].copy()
    return Surface(vertices=vertices, faces=np.ascontiguousarray(faces, dtype=np.int32), normals=vertex_normals(vertices, faces))
