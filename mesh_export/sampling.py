"""Trilinear reads of voxel-centred grids at field points."""

from __future__ import annotations

import numpy as np

# Points per gather: bounds the temporaries to a few tens of MB.
CHUNK_POINTS = 1 << 19


def field_to_index(points: np.ndarray, origin: np.ndarray, voxel_size: float) -> np.ndarray:
    """(N, 3) field points -> (N, 3) float64 continuous indices (sample i sits at index i)."""
    return (np.asarray(points, dtype=np.float64) - origin) / voxel_size - 0.5


def index_to_field(indices: np.ndarray, origin: np.ndarray, voxel_size: float) -> np.ndarray:
    """Inverse of `field_to_index`: (N, 3) continuous indices -> (N, 3) float64 field points."""
    return (np.asarray(indices, dtype=np.float64) + 0.5) * voxel_size + origin


def trilinear(volume: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Interpolate `volume` (R, R, R) or (R, R, R, C) at continuous `indices` (N, 3) [x, y, z].

    Indices outside [0, R - 1] read the nearest border sample. Returns (N,) or (N, C) float32.
    """
    resolution = volume.shape[0]
    channels = volume.shape[3:]
    flat = volume.reshape(resolution**3, -1)
    out = np.empty((len(indices), flat.shape[1]), dtype=np.float32)
    for start in range(0, len(indices), CHUNK_POINTS):
        chunk = np.clip(indices[start : start + CHUNK_POINTS], 0.0, resolution - 1)
        low = np.minimum(np.floor(chunk).astype(np.int64), resolution - 2)
        frac = (chunk - low).astype(np.float32)
        base = (low[:, 0] * resolution + low[:, 1]) * resolution + low[:, 2]
        acc = np.zeros((len(chunk), flat.shape[1]), dtype=np.float32)
        for dx in (0, 1):
            wx = frac[:, 0] if dx else 1.0 - frac[:, 0]
            for dy in (0, 1):
                wy = wx * (frac[:, 1] if dy else 1.0 - frac[:, 1])
                for dz in (0, 1):
                    weight = wy * (frac[:, 2] if dz else 1.0 - frac[:, 2])
                    corner = flat[base + (dx * resolution + dy) * resolution + dz]
                    acc += weight[:, None] * corner
        out[start : start + len(chunk)] = acc
    return out if channels else out[:, 0]
