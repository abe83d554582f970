"""glTF 2.0 binary (.glb) for the Blender-free path, written with trimesh.

What goes in: positions, normals, TEXCOORD_0 and the baked texture as the base colour of a PBR
material (metallic 0); per-step masks as custom attributes, whose names start with an underscore
as glTF requires (Blender's importer makes `_MASK_0`, `_MASK_1`, ... float attributes); provenance
in the extras of the node, the mesh and the scene (Blender shows them as custom properties).

With a texture the file holds no vertex colours: as COLOR_0 glTF multiplies them into the base
colour (and Blender's importer wires it so), which would darken the texture by itself, and as a
custom RGBA attribute beside the one-wide masks Blender 4.5's importer fails on the file about
half the time (it pairs custom attributes with their data through a set, whose order changes
with Python's hash seed, and attributes of different widths then do not fit). Without a texture
(texture_size 0) they are COLOR_0 on a white material (metallic 0).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .coords import METRES_PER_FIELD_UNIT, blender_to_gltf
from .files import write_whole
from .pipeline import TexturedMesh

MASK_ATTRIBUTE_PREFIX = "_MASK_"
PROVENANCE_KEY = "text_edit"
MESH_NAME = "text_edit_head"
ROUGHNESS = 0.8
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963


class GltfError(ValueError):
    """A mesh that would not be valid glTF (NaN or infinity in its arrays or JSON); one sentence."""


def mask_attribute(step: int) -> str:
    """The custom attribute holding edit step `step`'s mask."""
    return f"{MASK_ATTRIBUTE_PREFIX}{step}"


def _to_trimesh(mesh: TexturedMesh, scale: float):
    import trimesh
    from PIL import Image

    if mesh.space == "field":
        mesh = mesh.to_blender(scale)
    vertices = blender_to_gltf(mesh.vertices)
    normals = blender_to_gltf(mesh.normals)
    rgba = np.concatenate([mesh.colours, np.ones((len(mesh.colours), 1), np.float32)], axis=1)
    if mesh.texture is not None:
        material = trimesh.visual.material.PBRMaterial(
            name="baked",
            baseColorTexture=Image.fromarray(np.ascontiguousarray(mesh.texture)),
            metallicFactor=0.0,
            roughnessFactor=ROUGHNESS,
        )
        visual = trimesh.visual.TextureVisuals(uv=mesh.uvs, material=material)
    else:
        visual = trimesh.visual.ColorVisuals(vertex_colors=np.rint(rgba * 255).astype(np.uint8))
    attributes = {}
    for step in range(mesh.masks.shape[1]):
        attributes[mask_attribute(step)] = mesh.masks[:, step].astype(np.float32)
    result = trimesh.Trimesh(
        vertices=vertices,
        faces=mesh.faces,
        vertex_normals=normals,
        visual=visual,
        vertex_attributes=attributes,
        process=False,
        validate=False,
    )
    result.metadata = {PROVENANCE_KEY: mesh.provenance}
    return result, mesh.provenance


def glb_bytes(mesh: TexturedMesh, scale: float = METRES_PER_FIELD_UNIT) -> bytes:
    """The mesh as a .glb (glTF y up, metres: field units times `scale`)."""
    import trimesh

    for name in ("vertices", "normals", "colours", "uvs", "masks"):
        if not np.isfinite(getattr(mesh, name)).all():
            raise GltfError(
                f"The mesh's {name} hold NaN or infinite values, which glTF does not allow; export it again from a valid field grid."
            )
    result, provenance = _to_trimesh(mesh, scale)
    scene = trimesh.Scene()
    scene.add_geometry(result, geom_name=MESH_NAME, node_name=MESH_NAME)
    scene.metadata = {PROVENANCE_KEY: provenance}

    return trimesh.exchange.gltf.export_glb(scene, include_normals=True, tree_postprocessor=lambda tree: _finish_tree(tree, provenance))


def _finish_tree(tree: dict, provenance: dict) -> None:
    """Provenance on the node (Blender: object properties); buffer-view targets for vertex and index
    data (what the Khronos validator hints at). Raises GltfError if the JSON would hold NaN or inf."""
    import trimesh

    for node in tree.get("nodes", []):
        if "mesh" in node:
            node["extras"] = {PROVENANCE_KEY: provenance}
    plain = {
        "name": "vertex colours",
        "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": ROUGHNESS},
    }
    for mesh in tree.get("meshes", []):
        for primitive in mesh["primitives"]:
            if "material" not in primitive:  # glTF's default material is fully metallic
                tree.setdefault("materials", []).append(plain)
                primitive["material"] = len(tree["materials"]) - 1
    tree["asset"]["generator"] = "text-edit mesh_export (trimesh)"
    accessors, views = tree.get("accessors", []), tree.get("bufferViews", [])
    for mesh in tree.get("meshes", []):
        for primitive in mesh["primitives"]:
            for accessor in primitive["attributes"].values():
                views[accessors[accessor]["bufferView"]]["target"] = ARRAY_BUFFER
            if "indices" in primitive:
                views[accessors[primitive["indices"]]["bufferView"]]["target"] = ELEMENT_ARRAY_BUFFER
    try:
        trimesh.util.jsonify(tree, allow_nan=False)
    except ValueError:
        raise GltfError(
            "The mesh's glTF JSON would hold NaN or infinite numbers (from its provenance), which glTF does not allow; "
            "remove them from the provenance."
        ) from None


def write_glb(mesh: TexturedMesh, path: str | Path, scale: float = METRES_PER_FIELD_UNIT) -> Path:
    """Write the mesh to `path` as .glb, whole or not at all; returns the path."""
    data = glb_bytes(mesh, scale)
    return write_whole(path, lambda file: file.write(data))


def read_glb_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Re-read a .glb written here (for checks): positions, normals, uvs, faces and custom attributes,
    in glTF space. -> {name: array}."""
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    (geometry,) = scene.geometry.values()
    arrays = {"positions": np.asarray(geometry.vertices), "faces": np.asarray(geometry.faces)}
    if hasattr(geometry.visual, "uv") and geometry.visual.uv is not None:
        arrays["uvs"] = np.asarray(geometry.visual.uv)
    for name, values in geometry.vertex_attributes.items():
        arrays[name] = np.asarray(values)
    return arrays
