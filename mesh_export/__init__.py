"""From a field grid to a textured, masked mesh: numpy + scikit-image (with its scipy), xatlas and
fast-simplification; no torch, no bpy, so the add-on inside Blender and the bridge's command line
both use it. The glTF writer (trimesh + Pillow) is imported only when a .glb is written.

    grid = mesh_export.read("field.npz")            # or read_bytes(http_body)
    mesh = mesh_export.grid_to_mesh(grid, mesh_export.ExportOptions(texture_size=1024))
    mesh_export.write_glb(mesh, "head.glb")          # Blender-free path
    blender_mesh = mesh.to_blender()                 # z up, metres, for the add-on

Modules: fieldgrid (the format), surface (marching cubes, floaters, decimation, normals), uv (charts
and packing), colour (vertex colours, masks, texture baking), coords (field -> Blender -> glTF),
gltf (the .glb writer), pipeline (grid_to_mesh). See docs/mesh_export.md.
"""

from .coords import METRES_PER_FIELD_UNIT, blender_to_gltf, field_to_blender
from .fieldgrid import (
    FORMAT_NAME,
    FORMAT_VERSION,
    FieldGrid,
    FieldGridError,
    grid_points,
    read,
    read_bytes,
    to_bytes,
    validate,
    write,
)
from .pipeline import ExportOptions, SurfaceCache, TexturedMesh, grid_to_mesh


def write_glb(mesh, path, scale: float = METRES_PER_FIELD_UNIT):
    """Write `mesh` (a TexturedMesh) as a .glb file; see mesh_export.gltf."""
    from .gltf import write_glb as _write_glb

    return _write_glb(mesh, path, scale)


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METRES_PER_FIELD_UNIT",
    "ExportOptions",
    "FieldGrid",
    "FieldGridError",
    "SurfaceCache",
    "TexturedMesh",
    "blender_to_gltf",
    "field_to_blender",
    "grid_points",
    "grid_to_mesh",
    "read",
    "read_bytes",
    "to_bytes",
    "validate",
    "write",
    "write_glb",
]
