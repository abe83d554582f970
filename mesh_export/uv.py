"""UV atlas: projection charts cut from the surface, packed by xatlas.

Why not xatlas end to end: its chart computation (growing + LSCM) costs ~2 s for 20k triangles and
~60 s for 150k on two cores, far beyond an interactive export. Marching-cubes heads are smooth,
closed and star-like, so charts made of faces that look the same way, each projected flat along its
mean normal, are nearly isometric and cost milliseconds. The parts that need care are written here:

1. classify faces by the axis (+-x, +-y, +-z) their smoothed normal is closest to; smooth the labels
   (majority of the three neighbours) and fold charts smaller than MIN_CHART_FACES into a neighbour,
   never letting a face join a chart it faces away from by more than acos(MIN_PROJECTION_COS);
2. project each chart along its area-weighted mean normal (upright: v follows field +y where it can);
3. make every chart injective: faces that fold over (normal against the projection) or lie behind
   another layer of their own chart (an ear over the side of the head) are split off into new charts,
   found by rasterising each chart at half an edge length and keeping the front-most face per cell;
4. pack the charts into the texture square with xatlas (a maintained packer: padding between charts,
   bilinear-safe borders, one atlas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .raster import cover
from .surface import face_normals_and_areas

AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
UP = np.array([0.0, 1.0, 0.0])
FORWARD = np.array([0.0, 0.0, 1.0])
# Charting: a face may be relabelled to an axis only if its normal is within acos(0.3) = 72 deg of
# it; a face whose normal is within 5 deg of edge-on to its chart's projection leaves the chart.
MIN_PROJECTION_COS = 0.3
MIN_FACE_COS = 0.08
NORMAL_SMOOTHING = 3
SMOOTHING_PASSES = 8
MERGE_PASSES = 8
MIN_CHART_FACES = 24
# Injectivity: at most this many split rounds, a lattice of half the median edge, and two rings of
# faces around the ones found hidden (they overlap by less than a lattice cell).
INJECTIVITY_PASSES = 8
OVERLAP_CELL_EDGES = 0.5
HIDDEN_RINGS = 2
# Packing: texels of padding between charts (xatlas adds room for bilinear filtering on top), and the
# share of the texture the charts are sized to cover before packing.
PACK_PADDING = 3
PACK_FILL = 0.5
# xatlas's vertex assignment for a vertex of a dropped (degenerate) face.
UNPLACED = np.iinfo(np.uint32).max


@dataclass(frozen=True)
class UVAtlas:
    """Seam-split UV layout of a surface.

    vertex_source: (M,) int32 index of the surface vertex each atlas vertex copies;
    faces: (F, 3) int32 atlas-vertex indices, in the surface's face order and winding;
    uvs: (M, 2) float32 in [0, 1], u right, v up (texel row 0 is the image's top, at v = 1);
    face_chart: (F,) int32 chart of each face; chart_count: number of charts.
    """

    vertex_source: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    face_chart: np.ndarray
    chart_count: int


def face_neighbours(faces: np.ndarray) -> np.ndarray:
    """(F, 3) int64: the face across edge (corner k, corner k+1), or -1 (border or non-manifold)."""
    count = len(faces)
    a = faces.reshape(-1).astype(np.int64)
    b = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    key = np.minimum(a, b) * (int(faces.max()) + 1) + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]]))
    faces_on_edge = np.diff(np.append(starts, len(sorted_key)))
    pairs = starts[faces_on_edge == 2]
    first, second = order[pairs], order[pairs + 1]
    neighbours = np.full(3 * count, -1, dtype=np.int64)
    neighbours[first] = second // 3
    neighbours[second] = first // 3
    return neighbours.reshape(count, 3)


def _components(neighbours: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected groups of faces joined across edges whose two faces share `key`. -> (F,) ids, count."""
    count = len(neighbours)
    face = np.repeat(np.arange(count), 3)
    other = neighbours.reshape(-1)
    join = (other >= 0) & (key[face] == key[np.maximum(other, 0)])
    graph = coo_matrix((np.ones(int(join.sum()), dtype=np.int8), (face[join], other[join])), shape=(count, count))
    n, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64), int(n)


def _axis_labels(face_normals: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(F,) index into AXES for every face, after smoothing and small-chart merging."""
    score = face_normals @ AXES.T
    label = score.argmax(axis=1)
    rows = np.arange(len(label))
    valid = neighbours >= 0
    for _ in range(SMOOTHING_PASSES):
        around = np.where(valid, label[np.maximum(neighbours, 0)], -1)
        a, b, c = around[:, 0], around[:, 1], around[:, 2]
        majority = np.where(a == b, a, np.where(b == c, b, np.where(a == c, a, -1)))
        switch = (majority >= 0) & (majority != label) & (score[rows, np.maximum(majority, 0)] >= MIN_PROJECTION_COS)
        label = np.where(switch, majority, label)
    for _ in range(MERGE_PASSES):
        chart, count = _components(neighbours, label)
        size = np.bincount(chart, minlength=count)
        small = size[chart] < MIN_CHART_FACES
        if not small.any():
            break
        around = np.where(valid, label[np.maximum(neighbours, 0)], -1)
        bigger = valid & (size[chart[np.maximum(neighbours, 0)]] > size[chart][:, None])
        candidate_score = np.where(bigger, score[rows[:, None], np.maximum(around, 0)], -np.inf)
        best = candidate_score.argmax(axis=1)
        best_score = candidate_score[rows, best]
        move = small & (best_score >= MIN_PROJECTION_COS)
        label = np.where(move, around[rows, best], label)
    return label


def _chart_frames(face_normals: np.ndarray, areas: np.ndarray, chart: np.ndarray, count: int) -> np.ndarray:
    """(C, 3, 3) rows (u axis, v axis, normal) per chart; v follows +y unless the chart faces up/down."""
    summed = np.zeros((count, 3))
    np.add.at(summed, chart, face_normals * areas[:, None])
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    fallback = face_normals[np.unique(chart, return_index=True)[1]]
    normal = np.where(length > 1e-12, summed / np.maximum(length, 1e-300), fallback)
    helper = np.where((np.abs(normal @ UP) > 0.9)[:, None], FORWARD, UP)
    u_axis = np.cross(helper, normal)
    u_axis /= np.linalg.norm(u_axis, axis=1, keepdims=True)
    v_axis = np.cross(normal, u_axis)
    return np.stack([u_axis, v_axis, normal], axis=1)


def _folded_faces(face_normals: np.ndarray, chart: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(F,) bool: faces turned (nearly) edge-on or backward to their chart's projection."""
    return np.einsum("fj,fj->f", face_normals, frames[chart, 2]) < MIN_FACE_COS


def _hidden_faces(
    vertices: np.ndarray,
    faces: np.ndarray,
    neighbours: np.ndarray,
    chart: np.ndarray,
    frames: np.ndarray,
    cell: float,
    candidates: np.ndarray,
) -> np.ndarray:
    """(F,) bool: faces lying behind another part of their own chart once projected (an ear over the
    side of the head), found on a lattice of spacing `cell`, plus HIDDEN_RINGS rings of their
    neighbours (the faces that overlap by less than a lattice cell). Only charts of the `candidates`
    faces (F,) bool are looked at."""
    hidden = np.zeros(len(faces), dtype=bool)
    checked = np.flatnonzero(np.isin(chart, np.unique(chart[candidates])))
    projected = np.einsum("fcj,fkj->fck", vertices[faces[checked]], frames[chart[checked]])  # (K, 3, [u, v, depth])
    coverage = cover(projected[:, :, :2] / cell, strict=True)
    if coverage.face.size:
        # Lattice points are interior (strict), so two faces of one chart on one point overlap: the
        # front-most (largest depth along the chart normal) keeps its place, the others move out.
        depth = np.einsum("kc,kc->k", coverage.bary, projected[coverage.face, :, 2])
        lattice = coverage.ij - coverage.ij.min(axis=0)
        span = lattice.max(axis=0) + 1
        key = (chart[checked[coverage.face]] * span[0] + lattice[:, 0]) * span[1] + lattice[:, 1]
        order = np.argsort(key, kind="stable")
        key, depth, face = key[order], depth[order], checked[coverage.face[order]]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        front = np.maximum.reduceat(depth, starts)
        group_size = np.diff(np.append(starts, len(key)))
        behind = depth < np.repeat(front, group_size)
        hidden[face[behind]] = True
    valid = neighbours >= 0
    for _ in range(HIDDEN_RINGS if hidden.any() else 0):
        beside = valid & hidden[np.maximum(neighbours, 0)] & (chart[np.maximum(neighbours, 0)] == chart[:, None])
        hidden |= beside.any(axis=1)
    return hidden


def _smoothed_face_normals(weighted: np.ndarray, faces: np.ndarray, vertex_count: int) -> np.ndarray:
    """(F, 3) unit face normals averaged NORMAL_SMOOTHING times through the vertices (marching
    cubes' own face normals zig-zag, which would make chart borders saw-toothed)."""
    flat = faces.reshape(-1)
    for _ in range(NORMAL_SMOOTHING):
        corner = np.repeat(weighted, 3, axis=0)
        at_vertex = np.stack([np.bincount(flat, corner[:, k], minlength=vertex_count) for k in range(3)], axis=1)
        weighted = at_vertex[faces].sum(axis=1)
        weighted /= np.maximum(np.linalg.norm(weighted, axis=1, keepdims=True), 1e-300)
    return weighted


def _charts(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Injective projection charts. -> (F,) chart id, chart count, (C, 3, 3) frames."""
    face_normals, areas = face_normals_and_areas(vertices, faces)
    neighbours = face_neighbours(faces)
    smooth_faces = _smoothed_face_normals(face_normals * areas[:, None], faces, len(vertices))
    label = _axis_labels(smooth_faces, neighbours)
    chart, count = _components(neighbours, label)
    edges = np.linalg.norm(vertices[faces] - vertices[faces[:, [1, 2, 0]]], axis=2)
    cell = OVERLAP_CELL_EDGES * float(np.median(edges))
    unchecked = np.ones(len(faces), dtype=bool)
    for _ in range(INJECTIVITY_PASSES):
        frames = _chart_frames(face_normals, areas, chart, count)
        unfit = _folded_faces(face_normals, chart, frames)
        if not unfit.any():
            unfit = _hidden_faces(vertices, faces, neighbours, chart, frames, cell, unchecked)
            if not unfit.any():
                return chart, count, frames
            unchecked[:] = False
        # Charts that lose faces, and the charts those faces form, must be looked at (again).
        unchecked |= np.isin(chart, np.unique(chart[unfit]))
        chart, count = _components(neighbours, chart * 2 + unfit)
    # What still overlaps becomes one chart per face: a lone triangle is always injective.
    frames = _chart_frames(face_normals, areas, chart, count)
    unfit = _folded_faces(face_normals, chart, frames) | _hidden_faces(
        vertices, faces, neighbours, chart, frames, cell, np.ones(len(faces), dtype=bool)
    )
    alone = np.where(unfit, count + np.arange(len(faces)), chart)
    _, chart = np.unique(alone, return_inverse=True)
    count = int(chart.max()) + 1
    return chart, count, _chart_frames(face_normals, areas, chart, count)


def _pack(uvs: np.ndarray, faces: np.ndarray, texture_size: int, chart_area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place the charts (world-unit uvs (M, 2), faces (F, 3)) in one square atlas.

    -> (K,) index of the input vertex each packed vertex copies (xatlas may split some further),
    (F, 3) packed faces in input order, (K, 2) float32 uvs in [0, 1]."""
    import xatlas

    # Pack at about the final texel density into an atlas of xatlas's own size (one pass), then
    # scale that square-texelled atlas to fit the texture.
    texels_per_unit = float(np.sqrt(PACK_FILL * texture_size**2 / max(chart_area, 1e-12)))
    atlas = xatlas.Atlas()
    # In texel units: xatlas's degenerate-triangle tolerance is absolute.
    atlas.add_uv_mesh((uvs * texels_per_unit).astype(np.float32), faces.astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.padding = PACK_PADDING
    pack.bilinear = True
    pack.texels_per_unit = 1.0
    pack.rotate_charts = False
    pack.rotate_charts_to_axis = False
    atlas.generate(xatlas.ChartOptions(), pack)
    mapping, packed_faces, packed = atlas.get_mesh(0)
    if packed_faces.shape != faces.shape or not np.array_equal(mapping[packed_faces], faces):
        raise RuntimeError("xatlas changed the faces it packed")
    scale = np.array([atlas.width, atlas.height], dtype=np.float32) / max(atlas.width, atlas.height)
    packed = packed * scale
    placed_atlas, _ = atlas.get_mesh_vertex_assignment(0)
    _place_dropped_corners(packed, packed_faces, placed_atlas != UNPLACED)
    return mapping.astype(np.int64), packed_faces.astype(np.int32), packed.astype(np.float32)


def _place_dropped_corners(uvs: np.ndarray, faces: np.ndarray, placed: np.ndarray) -> None:
    """xatlas leaves the corners of (near-)zero-area faces unplaced at (0, 0); move each onto a placed
    corner of one of its faces, in place, so no sliver stretches across the atlas."""
    for _ in range(3):
        corner_placed = placed[faces]
        fix = ~corner_placed & corner_placed.any(axis=1, keepdims=True)
        if not fix.any():
            break
        donor = faces[np.arange(len(faces)), corner_placed.argmax(axis=1)]
        rows, cols = np.nonzero(fix)
        uvs[faces[rows, cols]] = uvs[donor[rows]]
        placed[faces[rows, cols]] = True


def build_atlas(vertices: np.ndarray, faces: np.ndarray, texture_size: int) -> UVAtlas:
    """Charts, their projections and a packed layout for a `texture_size` square texture.

    vertices (N, 3) float, faces (F, 3) int -> UVAtlas.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    chart, count, frames = _charts(vertices, faces)
    corner_chart = np.repeat(chart, 3)
    pair = corner_chart * len(vertices) + faces.reshape(-1)
    unique_pair, atlas_index = np.unique(pair, return_inverse=True)
    source = (unique_pair % len(vertices)).astype(np.int32)
    source_chart = unique_pair // len(vertices)
    local = np.einsum("mj,mkj->mk", vertices[source], frames[source_chart, :2])
    _, areas = face_normals_and_areas(vertices, faces)
    mapping, packed_faces, uvs = _pack(local, atlas_index.reshape(-1, 3), texture_size, float(areas.sum()))
    return UVAtlas(
        vertex_source=source[mapping],
        faces=packed_faces,
        uvs=uvs,
        face_chart=chart.astype(np.int32),
        chart_count=count,
    )
