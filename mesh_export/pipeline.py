"""grid_to_mesh: a FieldGrid in, a textured, masked mesh out (the add-on and the CLI both call it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .colour import LAYOUT_MAX_SIZE, TextureLayout, bake_texture, bake_with, sample_masks, sample_rgb, texture_layout
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


@dataclass(frozen=True, eq=False)
class _Meshed:
    """What a mesh takes from its grid's density alone (and the options): the surface, its UV atlas
    and its texture layout."""

    density: np.ndarray
    placement: tuple
    options: ExportOptions
    surface: Any
    welded: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    chart_count: int
    layout: TextureLayout | None


class SurfaceCache:
    """The last few meshed densities. A texture-only edit keeps its head's density exactly (the
    sparse sampler then evaluates the same voxels, so the grids' density arrays are equal): its mesh
    is the earlier one re-coloured, without marching cubes, the UV atlas or rasterising the texture
    again. Pass one to grid_to_mesh where one process meshes edit after edit (the add-on's mesher)."""

    MAX_VOXELS = 257**3
    """Larger grids are not kept (a 512^3 density is 0.5 GB)."""

    def __init__(self, entries: int = 2):
        self.entries = entries
        self._meshed: list[_Meshed] = []

    def find(self, grid: FieldGrid, options: ExportOptions) -> _Meshed | None:
        placement = _placement(grid)
        for meshed in self._meshed:
            if meshed.options == options and meshed.placement == placement and np.array_equal(meshed.density, grid.density):
                return meshed
        return None

    def keep(self, meshed: _Meshed) -> None:
        if meshed.density.size <= self.MAX_VOXELS:  # its own copy: the caller's grid may change
            self._meshed = [replace(meshed, density=meshed.density.copy()), *self._meshed[: self.entries - 1]]


def _placement(grid: FieldGrid) -> tuple:
    return (grid.density.shape, float(grid.level), float(grid.box_size), tuple(float(c) for c in grid.box_centre))


def _report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, fraction)


def _mesh_surface(grid: FieldGrid, options: ExportOptions, progress: Progress | None) -> _Meshed:
    """Marching cubes, the UV atlas and the texture layout: everything that depends on the density only."""
    _report(progress, "surface", 0.0)
    surface = extract_surface(
        grid,
        SurfaceOptions(
            border_fraction=options.border_fraction,
            min_component_fraction=options.min_component_fraction,
            max_triangles=options.max_triangles,
        ),
    )
    layout = None
    if options.texture_size:
        _report(progress, "uv atlas", 0.4)
        atlas = build_atlas(surface.vertices, surface.faces, options.texture_size)
        welded, faces, uvs, chart_count = atlas.vertex_source.astype(np.int32), atlas.faces, atlas.uvs, atlas.chart_count
        if options.texture_size <= LAYOUT_MAX_SIZE:
            _report(progress, "texture layout", 0.6)
            layout = texture_layout(surface.vertices[welded], faces, uvs, options.texture_size)
    else:
        welded = np.arange(len(surface.vertices), dtype=np.int32)
        faces, uvs, chart_count = surface.faces, np.zeros((len(surface.vertices), 0), dtype=np.float32), 0
    return _Meshed(grid.density, _placement(grid), options, surface, welded, faces, uvs, chart_count, layout)


def grid_to_mesh(
    grid: FieldGrid, options: ExportOptions = ExportOptions(), progress: Progress | None = None, cache: SurfaceCache | None = None
) -> TexturedMesh:
    """Surface, colours, masks, UV atlas and texture of `grid`, in field space; with a `cache`, the
    surface of an earlier grid with the same density is re-coloured instead of meshed again.

    `progress(stage, fraction)` is called between stages (it may raise to cancel).
    Raises FieldGridError when the grid holds no surface at its level, or one that is not finite.
    """
    started = time.perf_counter()
    meshed = cache.find(grid, options) if cache is not None else None
    reused = meshed is not None
    if meshed is None:
        meshed = _mesh_surface(grid, options, progress)
        if cache is not None:
            cache.keep(meshed)
    surface = meshed.surface
    welded, faces, uvs = meshed.welded.copy(), meshed.faces.copy(), meshed.uvs.copy()  # the kept ones stay as they were
    _report(progress, "colours and masks", 0.6)
    colours = sample_rgb(grid, surface.vertices)[welded]
    masks = sample_masks(grid, surface.vertices)[welded]
    vertices = surface.vertices[welded]
    texture = None
    if options.texture_size:
        _report(progress, "texture", 0.7)
        if meshed.layout is not None:
            texture = bake_with(meshed.layout, grid)
        else:
            texture = bake_texture(grid, vertices, faces, uvs, options.texture_size)
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
            "charts": meshed.chart_count,
            "surface_reused": reused,
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
