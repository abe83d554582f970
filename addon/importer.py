"""A mesh_export TexturedMesh (already in Blender's frame) into Blender data.

One object per head, in the "Text Edit" collection: re-running an edit on the same head replaces
that object's mesh, material image and properties instead of adding a copy. The object carries

- the mesh welded back together (UV seams live in the loops' UV map, not as split vertices),
- a "Col" colour attribute (vertex colours) and a material: Principled BSDF fed by the baked image,
- the 3D attention mask as a float point attribute `text_edit_mask`, its glTF-safe copy `_EDIT_MASK`
  (glTF keeps custom attributes only with a leading underscore), and a vertex group
  `text_edit_mask` with the same weights (for selection and modifiers),
- provenance as custom properties (they become glTF `extras`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np

from .. import mesh_export
from .work import EditOutcome, step_label

COLLECTION = "Text Edit"
COLOUR_ATTRIBUTE = "Col"
MASK_ATTRIBUTE = "text_edit_mask"
GLTF_MASK_ATTRIBUTE = "_EDIT_MASK"
VERTEX_GROUP = "text_edit_mask"
UV_MAP = "UVMap"
HEAD_KEY = "text_edit_head"
STACK = "text_edit_stack"
MASK_MATERIAL = "Text Edit mask"
MASK_SHOWN = "text_edit_mask_shown"
PREVIEW = "text_edit_preview"
CAMERA = "text_edit_camera"
VERTEX_GROUP_LEVELS = 255


def collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    found = bpy.data.collections.get(COLLECTION)
    if found is None:
        found = bpy.data.collections.new(COLLECTION)
    if found.name not in scene.collection.children:
        scene.collection.children.link(found)
    return found


def head_objects(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if HEAD_KEY in o]


def find_head(scene: bpy.types.Scene, key: str) -> bpy.types.Object | None:
    return next((o for o in head_objects(scene) if o[HEAD_KEY] == key), None)


def model_camera(scene: bpy.types.Scene) -> dict:
    """The generator's orbit camera recorded with the active head (else any head); {} for none."""
    active = bpy.context.view_layer.objects.active if bpy.context.view_layer else None
    heads = head_objects(scene)
    obj = active if active is not None and HEAD_KEY in active else (heads[0] if heads else None)
    try:
        return json.loads(obj.get(CAMERA, "{}")) if obj is not None else {}
    except (TypeError, ValueError):
        return {}


def stack_of(obj: bpy.types.Object | None) -> list[dict]:
    if obj is None or STACK not in obj:
        return []
    return json.loads(obj[STACK])


def object_name(key: str, steps: list[dict]) -> str:
    return f"{key}: {' + '.join(step_label(s) for s in steps)}" if steps else f"{key}: unedited"


def build_mesh(name: str, mesh: mesh_export.TexturedMesh) -> bpy.types.Mesh:
    """Blender mesh data from a TexturedMesh (welded vertices, per-loop UVs, colours, masks)."""
    first = first_copies(mesh)
    welded_count = len(first)
    faces = mesh.welded[mesh.faces]
    data = bpy.data.meshes.new(name)
    data.vertices.add(welded_count)
    data.vertices.foreach_set("co", mesh.vertices[first].astype(np.float32).ravel())
    data.loops.add(faces.size)
    data.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    data.polygons.add(len(faces))
    data.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    data.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    if mesh.uvs.shape[1] == 2:
        uv = data.uv_layers.new(name=UV_MAP)
        uv.data.foreach_set("uv", mesh.uvs[mesh.faces].astype(np.float32).ravel())
    colours = np.concatenate([mesh.colours[first], np.ones((welded_count, 1), np.float32)], axis=1)
    colour = data.color_attributes.new(COLOUR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    colour.data.foreach_set("color", colours.astype(np.float32).ravel())
    data.color_attributes.active_color = colour
    data.color_attributes.render_color_index = data.color_attributes.active_color_index
    mask = combined_mask(mesh)[first]
    for attribute_name in (MASK_ATTRIBUTE, GLTF_MASK_ATTRIBUTE):
        data.attributes.new(attribute_name, "FLOAT", "POINT").data.foreach_set("value", mask)
    data.update()
    data.validate(clean_customdata=False)
    return data


def combined_mask(mesh: mesh_export.TexturedMesh) -> np.ndarray:
    """Where any step of the stack edits (the union of the steps' masks), one value per vertex."""
    if mesh.masks.shape[1] == 0:
        return np.zeros(len(mesh.vertices), dtype=np.float32)
    return mesh.masks.max(axis=1).astype(np.float32)


def fill_vertex_group(obj: bpy.types.Object, weights: np.ndarray) -> None:
    """Vertex group weights quantised to 1/255: one `add` call per level instead of per vertex."""
    group = obj.vertex_groups.get(VERTEX_GROUP) or obj.vertex_groups.new(name=VERTEX_GROUP)
    levels = np.rint(np.clip(weights, 0.0, 1.0) * VERTEX_GROUP_LEVELS).astype(np.int32)
    order = np.argsort(levels, kind="stable")
    bounds = np.searchsorted(levels[order], np.arange(1, VERTEX_GROUP_LEVELS + 2))
    for level in range(1, VERTEX_GROUP_LEVELS + 1):
        members = order[bounds[level - 1]:bounds[level]]
        if len(members):
            group.add(members.tolist(), level / VERTEX_GROUP_LEVELS, "REPLACE")


def texture_image(name: str, texture: np.ndarray) -> bpy.types.Image:
    """A packed image from an (T, T, 3) uint8 texture whose row 0 is the top."""
    size = texture.shape[0]
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (size, size):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, size, size, alpha=False)
    rgba = np.ones((size, size, 4), dtype=np.float32)
    rgba[..., :3] = texture[::-1].astype(np.float32) / 255.0
    image.pixels.foreach_set(rgba.ravel())
    image.pack()
    return image


def head_material(name: str, image: bpy.types.Image | None) -> bpy.types.Material:
    """Principled BSDF with the baked texture as base colour (vertex colours when there is none)."""
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (300, 0)
    shader = nodes.new("ShaderNodeBsdfPrincipled")
    shader.inputs["Roughness"].default_value = 0.6
    links.new(shader.outputs["BSDF"], output.inputs["Surface"])
    if image is not None:
        source = nodes.new("ShaderNodeTexImage")
        source.image = image
        colour = source.outputs["Color"]
    else:
        source = nodes.new("ShaderNodeVertexColor")
        source.layer_name = COLOUR_ATTRIBUTE
        colour = source.outputs["Color"]
    source.location = (-400, 0)
    links.new(colour, shader.inputs["Base Color"])
    return material


def mask_material() -> bpy.types.Material:
    """Shows `text_edit_mask` as colour: dark grey outside the edit, orange where it applies."""
    material = bpy.data.materials.get(MASK_MATERIAL)
    if material is not None:
        return material
    material = bpy.data.materials.new(MASK_MATERIAL)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = nodes.get("Principled BSDF")
    attribute = nodes.new("ShaderNodeAttribute")
    attribute.attribute_name = MASK_ATTRIBUTE
    attribute.location = (-600, 0)
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.location = (-350, 0)
    ramp.color_ramp.elements[0].color = (0.08, 0.08, 0.08, 1.0)
    ramp.color_ramp.elements[1].color = (1.0, 0.35, 0.0, 1.0)
    links.new(attribute.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], shader.inputs["Base Color"])
    material.diffuse_color = (1.0, 0.35, 0.0, 1.0)
    return material


def set_mask_shown(obj: bpy.types.Object, shown: bool) -> None:
    """Swap the object's material for the mask material and back (the head material is kept)."""
    head = bpy.data.materials.get(f"Text Edit {obj[HEAD_KEY]}")
    obj.data.materials.clear()
    obj.data.materials.append(mask_material() if shown else head)
    obj[MASK_SHOWN] = shown


def preview_image(name: str, png: bytes) -> bpy.types.Image | None:
    """The bridge's before | after | mask picture as a packed image (shown in the panel)."""
    if not png:
        return None
    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    folder = Path(tempfile.mkdtemp(prefix="text-edit-preview-"))
    path = folder / "preview.png"
    path.write_bytes(png)
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
        image.name = name
        image.pack()
    except RuntimeError:  # not a picture Blender can read: leave the head without one
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return image


def import_outcome(scene: bpy.types.Scene, outcome: EditOutcome, bridge_version: str = "") -> bpy.types.Object:
    """Create or update the head's object from an edit's outcome; returns the object."""
    request, mesh = outcome.request, outcome.mesh
    key, steps = request.head.key, list(request.steps)
    name = object_name(key, steps)
    data = build_mesh(name, mesh)
    image = texture_image(f"Text Edit {key}", mesh.texture) if mesh.texture is not None else None
    data.materials.append(head_material(f"Text Edit {key}", image))
    obj = find_head(scene, key)
    if obj is None:
        obj = bpy.data.objects.new(name, data)
        collection(scene).objects.link(obj)
    else:
        old = obj.data
        obj.data = data
        obj.name = name
        if old.users == 0:
            bpy.data.meshes.remove(old)
        obj.vertex_groups.clear()
    fill_vertex_group(obj, combined_mask(mesh)[first_copies(mesh)])
    provenance = mesh.provenance
    obj[HEAD_KEY] = key
    obj["text_edit_seed"] = request.head.seed
    obj["text_edit_params"] = json.dumps(request.head.params)
    obj[STACK] = json.dumps(steps)
    obj["text_edit_edits"] = "; ".join(_describe(e) for e in provenance.get("edits", [])) or "none"
    obj["text_edit_strength"] = [float(s.get("strength", 1.0)) for s in steps] if steps else [0.0]
    obj["text_edit_bridge_version"] = provenance.get("bridge_version", bridge_version)
    obj["text_edit_generator"] = provenance.get("generator", "")
    obj[CAMERA] = json.dumps(provenance.get("camera") or {})
    obj["text_edit_job"] = outcome.job.get("id", "")
    obj[MASK_SHOWN] = False
    preview = preview_image(f"Text Edit preview {key}", outcome.preview_png)
    obj[PREVIEW] = preview.name if preview is not None else ""
    return obj


def first_copies(mesh: mesh_export.TexturedMesh) -> np.ndarray:
    """For each welded vertex, the index of one of its split copies (they share position and colour)."""
    welded_count = int(mesh.welded.max()) + 1 if len(mesh.welded) else 0
    first = np.zeros(welded_count, dtype=np.int64)
    first[mesh.welded[::-1]] = np.arange(len(mesh.welded))[::-1]
    return first


def _describe(edit: dict) -> str:
    module = f" [{edit['module']}]" if edit.get("module") else ""
    return f"{edit.get('edit')} @ {edit.get('mask')} x{edit.get('strength', 1.0):g}{module}"
