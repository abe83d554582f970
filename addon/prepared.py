"""Everything the Blender import needs, computed off the main thread (plain numpy, no bpy).

The worker thread turns a TexturedMesh into flat arrays ready for `foreach_set` (welded vertices,
loop indices, per-loop UVs, colours, the mask and its vertex-group levels) and the texture into PNG
bytes that Blender packs as they are, so the main thread only hands memory to Blender: a 128^3
head's import costs a few milliseconds per timer tick instead of one 100+ ms stall.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .. import mesh_export

VERTEX_GROUP_LEVELS = 255


@dataclass
class PreparedMesh:
    vertex_count: int
    co: np.ndarray  # (3V,) float32
    vertex_index: np.ndarray  # (3F,) int32
    loop_start: np.ndarray  # (F,) int32
    uv: np.ndarray | None  # (6F,) float32, per loop
    colours: np.ndarray  # (4V,) float32 RGBA
    mask: np.ndarray  # (V,) float32
    group_levels: list[tuple[float, list[int]]]  # (weight, vertex indices) per quantised level
    texture_png: bytes | None
    texture_size: int

    @property
    def face_count(self) -> int:
        return len(self.loop_start)


def first_copies(mesh: mesh_export.TexturedMesh) -> np.ndarray:
    """For each welded vertex, the index of one of its split copies (they share position and colour)."""
    welded_count = int(mesh.welded.max()) + 1 if len(mesh.welded) else 0
    first = np.zeros(welded_count, dtype=np.int64)
    first[mesh.welded[::-1]] = np.arange(len(mesh.welded))[::-1]
    return first


def combined_mask(mesh: mesh_export.TexturedMesh) -> np.ndarray:
    """Where any step of the stack edits (the union of the steps' masks), one value per vertex."""
    if mesh.masks.shape[1] == 0:
        return np.zeros(len(mesh.vertices), dtype=np.float32)
    return mesh.masks.max(axis=1).astype(np.float32)


def group_levels(weights: np.ndarray) -> list[tuple[float, list[int]]]:
    """Vertex group weights quantised to 1/255: one `add` call per level instead of per vertex."""
    levels = np.rint(np.clip(weights, 0.0, 1.0) * VERTEX_GROUP_LEVELS).astype(np.int32)
    order = np.argsort(levels, kind="stable")
    bounds = np.searchsorted(levels[order], np.arange(1, VERTEX_GROUP_LEVELS + 2))
    return [
        (level / VERTEX_GROUP_LEVELS, order[bounds[level - 1] : bounds[level]].tolist())
        for level in range(1, VERTEX_GROUP_LEVELS + 1)
        if bounds[level] > bounds[level - 1]
    ]


def texture_png(texture: np.ndarray) -> bytes:
    """A (T, T, 3) uint8 texture (row 0 at the top) as PNG bytes (fast compression)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(texture), "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def prepare(mesh: mesh_export.TexturedMesh) -> PreparedMesh:
    first = first_copies(mesh)
    faces = mesh.welded[mesh.faces]
    colours = np.concatenate([mesh.colours[first], np.ones((len(first), 1), np.float32)], axis=1)
    mask = combined_mask(mesh)[first]
    return PreparedMesh(
        vertex_count=len(first),
        co=mesh.vertices[first].astype(np.float32).ravel(),
        vertex_index=faces.astype(np.int32).ravel(),
        loop_start=np.arange(0, faces.size, 3, dtype=np.int32),
        uv=mesh.uvs[mesh.faces].astype(np.float32).ravel() if mesh.uvs.shape[1] == 2 else None,
        colours=colours.astype(np.float32).ravel(),
        mask=mask,
        group_levels=group_levels(mask),
        texture_png=texture_png(mesh.texture) if mesh.texture is not None else None,
        texture_size=0 if mesh.texture is None else int(mesh.texture.shape[0]),
    )
