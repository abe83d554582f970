"""Lattice points inside 2D triangles: the one rasteriser (texture baking, chart overlap checks)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# Candidate points per chunk of triangles: bounds the temporaries to ~100 MB.
CHUNK_CANDIDATES = 1 << 21
# Barycentric tolerance: >= -INCLUSIVE counts edges as inside (no cracks between neighbours).
INCLUSIVE = 1e-6


@dataclass(frozen=True)
class Coverage:
    """Which integer lattice points lie in which triangle.

    face: (K,) int64 triangle index; ij: (K, 2) int64 lattice point (x, y); bary: (K, 3) float64
    barycentric weights of the triangle's corners at the point.
    """

    face: np.ndarray
    ij: np.ndarray
    bary: np.ndarray


def cover(triangles: np.ndarray, strict: bool = False) -> Coverage:
    """Integer lattice points inside each triangle of `triangles` (F, 3, 2) (either winding).

    strict=False counts points on an edge for both neighbours (what baking wants: no cracks);
    strict=True counts only interior points (what an overlap test wants: neighbours never share).
    """
    parts = list(cover_in_chunks(triangles, strict))
    if not parts:
        return Coverage(np.zeros(0, np.int64), np.zeros((0, 2), np.int64), np.zeros((0, 3)))
    return Coverage(*(np.concatenate([getattr(part, name) for part in parts]) for name in ("face", "ij", "bary")))


def cover_in_chunks(triangles: np.ndarray, strict: bool = False) -> Iterator[Coverage]:
    """`cover` in pieces of about CHUNK_CANDIDATES candidate points, in triangle order: what a
    caller that only writes each piece somewhere (a texture) needs, without holding them all."""
    triangles = np.asarray(triangles, dtype=np.float64)
    coefficients = _barycentric_planes(triangles)
    low = np.ceil(triangles.min(axis=1) - INCLUSIVE).astype(np.int64)
    high = np.floor(triangles.max(axis=1) + INCLUSIVE).astype(np.int64)
    extent = np.maximum(high - low + 1, 0)
    counts = extent[:, 0] * extent[:, 1]
    cumulative = np.cumsum(counts)
    start = 0
    while start < len(counts):
        before = cumulative[start - 1] if start else 0
        stop = max(int(np.searchsorted(cumulative, before + CHUNK_CANDIDATES, side="right")), start + 1)
        n = counts[start:stop]
        face = np.repeat(np.arange(start, stop), n)
        start = stop
        if face.size == 0:
            continue
        offset = np.arange(face.size) - np.repeat(np.cumsum(n) - n, n)
        row, col = np.divmod(offset, extent[face, 0])
        x = (low[face, 0] + col).astype(np.float64)
        y = (low[face, 1] + row).astype(np.float64)
        k = coefficients[face]
        w1 = k[:, 0] * x + k[:, 1] * y + k[:, 2]
        w2 = k[:, 3] * x + k[:, 4] * y + k[:, 5]
        w0 = 1.0 - w1 - w2
        if strict:
            inside = (w0 > INCLUSIVE) & (w1 > INCLUSIVE) & (w2 > INCLUSIVE)
        else:
            inside = (w0 >= -INCLUSIVE) & (w1 >= -INCLUSIVE) & (w2 >= -INCLUSIVE)
        if inside.any():
            yield Coverage(
                face[inside],
                np.stack([x[inside], y[inside]], axis=1).astype(np.int64),
                np.stack([w0[inside], w1[inside], w2[inside]], axis=1),
            )


def _barycentric_planes(triangles: np.ndarray) -> np.ndarray:
    """(F, 6): weights of corners 1 and 2 as planes, w1 = k0 x + k1 y + k2 and w2 = k3 x + k4 y + k5.
    Degenerate triangles get w1 = -1 everywhere, so no point is ever inside them."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e0, e1 = b - a, c - a
    det = e0[:, 0] * e1[:, 1] - e1[:, 0] * e0[:, 1]
    degenerate = np.abs(det) <= 1e-18
    inv = 1.0 / np.where(degenerate, 1.0, det)
    planes = np.stack(
        [
            e1[:, 1] * inv,
            -e1[:, 0] * inv,
            (a[:, 1] * e1[:, 0] - a[:, 0] * e1[:, 1]) * inv,
            -e0[:, 1] * inv,
            e0[:, 0] * inv,
            (a[:, 0] * e0[:, 1] - a[:, 1] * e0[:, 0]) * inv,
        ],
        axis=1,
    )
    planes[degenerate] = (0.0, 0.0, -1.0, 0.0, 0.0, 0.0)
    return planes
