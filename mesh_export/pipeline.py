"""grid_to_mesh: a FieldGrid in, a textured, masked mesh out (the add-on and the CLI both call it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .colour import bake_texture, sample_masks, sample_rgb
from .coords import METRES_PER_FIELD_UNIT, field_to_blender
from .fieldgrid import FieldGrid, FieldGridError
from .surface import EG3D_BORDER_FRACTION, SurfaceOptions, extract_surface
from .uv import build_atlas

MESH_EXPORT_VERSION = "0.1.0"
MIN_TEXTURE_SIZE = 64
MAX_TEXTURE_SIZE = 8192
MIN_TRIANGLES = 100
"""The smallest decimation budget: fewer is no head (1 triangle failed inside the simplifier)."""


@dataclass(frozen=True)
class ExportOptions:
    """texture_size: side of the baked square texture in texels, 0 for vertex colours only.
    max_triangles: decimation budget, 0 keeps every marching-cubes triangle.
    border_fraction, min_component_fraction: see surface.SurfaceOptions."""

    texture_size: int = 1024
    max_triangles: int = 200_000
    border_fraction: float = EG3D_BORDER_FRACTION
    min_component_fraction: float = 0.002

    def __post_init__(self) -> None:
        if self.texture_size and not MIN_TEXTURE_SIZE <= self.texture_size <= MAX_TEXTURE_SIZE:
            raise ValueError(f"texture_size must be 0 or between {MIN_TEXTURE_SIZE} and {MAX_TEXTURE_SIZE}, got {self.texture_size}")
        if self.max_triangles < 0 or 0 < self.max_triangles < MIN_TRIANGLES:
            raise ValueError(f"max_triangles must be 0 (no decimation) or at least {MIN_TRIANGLES}, got {self.max_triangles}")
        if not 0.0 <= self.border_fraction < 0.5:
            raise ValueError(f"border_fraction must be in [0, 0.5), got {self.border_fraction}")


@dataclass(frozen=True, eq=False)
class TexturedMesh:
    """A triangle mesh split at UV seams, in field space (y up, face toward +z) unless `space` says
    "blender" (z up, metres; see coords.py).

    vertices: (M, 3) float32; faces: (F, 3) int32, counter-clockwise seen from outside;
    normals: (M, 3) float32 unit, outward; colours: (M, 3) float32 in [0, 1] (vertex colours);
    uvs: (M, 2) float32 in [0, 1], v up, or (M, 0) without a texture;
    texture: (T, T, 3) uint8, row 0 at the top (v = 1), or None;
    masks: (M, S) float32 in [0, 1], one column per edit step;
    welded: (M,) int32 index of each vertex in the seamless surface (equal for copies made at seams);
    provenance: the grid's provenance plus how the mesh was made (JSON-serialisable).
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colours: np.ndarray
    uvs: np.ndarray
    texture: np.ndarray | None
    masks: np.ndarray
    welded: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    space: str = "field"

    def to_blender(self, scale: float = METRES_PER_FIELD_UNIT) -> "TexturedMesh":
        """The same mesh in Blender's frame (z up, metres); faces and uvs are unchanged."""
        if self.space != "field":
            raise ValueError(f"mesh is already in {self.space} space")
        return replace(
            self,
            vertices=field_to_blender(self.vertices, scale),
            normals=field_to_blender(self.normals, 1.0),
            space="blender",
            provenance={**self.provenance, "metres_per_field_unit": scale},
        )


Progress = Callable[[str, float], None]


def _report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, fraction)


def grid_to_mesh(grid: FieldGrid, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> TexturedMesh:
    """Surface, colours, masks, UV atlas and texture of `grid`, in field space.

    `progress(stage, fraction)` is called between stages (it may raise to cancel).
    Raises FieldGridError when the grid holds no surface at its level, or one that is not finite.
    """
    started = time.perf_counter()
    _report(progress, "surface", 0.0)
    surface = extract_surface(
        grid,
        SurfaceOptions(
            border_fraction=options.border_fraction,
            min_component_fraction=options.min_component_fraction,
            max_triangles=options.max_triangles,
        ),
    )
    if options.texture_size:
        _report(progress, "uv atlas", 0.4)
        atlas = build_atlas(surface.vertices, surface.faces, options.texture_size)
        welded, faces, uvs = atlas.vertex_source.astype(np.int32), atlas.faces, atlas.uvs
        chart_count = atlas.chart_count
    else:
        welded = np.arange(len(surface.vertices), dtype=np.int32)
        faces, uvs, chart_count = surface.faces, np.zeros((len(surface.vertices), 0), dtype=np.float32), 0
    _report(progress, "colours and masks", 0.6)
    colours = sample_rgb(grid, surface.vertices)[welded]
    masks = sample_masks(grid, surface.vertices)[welded]
    vertices = surface.vertices[welded]
    texture = None
    if options.texture_size:
        _report(progress, "texture", 0.7)
        texture, _ = bake_texture(grid, vertices, faces, uvs, options.texture_size)
    normals = surface.normals[welded]
    arrays = {"vertices": vertices, "normals": normals, "colours": colours, "uvs": uvs, "masks": masks}
    bad = [name for name, array in arrays.items() if not np.isfinite(array).all()]
    if bad:
        names = ", ".join(bad)
        raise FieldGridError(f"The field grid gives a mesh whose {names} are not finite; check the grid's box and density values.")
    _report(progress, "done", 1.0)
    provenance = {
        **grid.provenance,
        "mesh_export": {
            "version": MESH_EXPORT_VERSION,
            "options": asdict(options),
            "level": grid.level,
            "grid_resolution": grid.resolution,
            "box_size": grid.box_size,
            "box_centre": [float(c) for c in grid.box_centre],
            "triangles": int(len(faces)),
            "charts": chart_count,
            "seconds": round(time.perf_counter() - started, 3),
        },
    }
    return TexturedMesh(
        vertices=vertices,
        faces=faces,
        normals=normals,
        colours=colours,
        uvs=uvs,
        texture=texture,
        masks=masks,
        welded=welded,
        provenance=provenance,
    )
