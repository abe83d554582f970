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
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np

from ..bridge.errors import BridgeError
from .prepared import PreparedMesh
from .work import EditOutcome, step_label

COLLECTION = "Text Edit"
COLOUR_ATTRIBUTE = "Col"
MASK_ATTRIBUTE = "text_edit_mask"
GLTF_MASK_ATTRIBUTE = "_EDIT_MASK"
VERTEX_GROUP = "text_edit_mask"
UV_MAP = "UVMap"
HEAD_KEY = "text_edit_head"
LATENT = "text_edit_latent"
"""A head made from a picture: its ws and the picture's hash (JSON), so that edits can make it again on any bridge."""
STACK = "text_edit_stack"
MASK_MATERIAL = "Text Edit mask"
MASK_SHOWN = "text_edit_mask_shown"
PREVIEW = "text_edit_preview"
CAMERA = "text_edit_camera"


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


STEP_TEXT = ("module", "edit", "mask", "instruction", "mask_module")


def _valid_step(step) -> bool:
    """A step as the add-on stores it: prompts or a module name as text, a finite strength."""
    if not isinstance(step, dict) or not all(isinstance(step.get(k, ""), str) for k in STEP_TEXT):
        return False
    strength = step.get("strength", 1.0)
    return isinstance(strength, (int, float)) and not isinstance(strength, bool) and math.isfinite(strength)


def stack_of(obj: bpy.types.Object | None) -> list[dict]:
    """The edit stack stored on a head object; one sentence (BridgeError) when it was changed into
    something that is not one (the custom property is the artist's to edit)."""
    if obj is None or STACK not in obj:
        return []
    try:
        steps = json.loads(obj[STACK])
    except (TypeError, ValueError):
        steps = None
    if not (isinstance(steps, list) and all(_valid_step(step) for step in steps)):
        raise BridgeError(
            f"The edit stack stored on {obj.name} (its {STACK} property) is damaged; make the head again or fix the property."
        )
    return steps


def stack_or_none(obj: bpy.types.Object | None) -> list[dict] | None:
    """stack_of for drawing and polling, which must not raise: None when the stored stack is damaged."""
    try:
        return stack_of(obj)
    except BridgeError:
        return None


def object_name(key: str, steps: list[dict]) -> str:
    return f"{key}: {' + '.join(step_label(s) for s in steps)}" if steps else f"{key}: unedited"


def build_mesh(name: str, prepared: PreparedMesh) -> bpy.types.Mesh:
    """Blender mesh data from prepared arrays (welded vertices, per-loop UVs, colours, masks)."""
    data = bpy.data.meshes.new(name)
    data.vertices.add(prepared.vertex_count)
    data.vertices.foreach_set("co", prepared.co)
    data.loops.add(len(prepared.vertex_index))
    data.loops.foreach_set("vertex_index", prepared.vertex_index)
    data.polygons.add(prepared.face_count)
    data.polygons.foreach_set("loop_start", prepared.loop_start)
    data.polygons.foreach_set("use_smooth", np.ones(prepared.face_count, dtype=bool))
    if prepared.uv is not None:
        data.uv_layers.new(name=UV_MAP).data.foreach_set("uv", prepared.uv)
    colour = data.color_attributes.new(COLOUR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    colour.data.foreach_set("color", prepared.colours)
    data.color_attributes.active_color = colour
    data.color_attributes.render_color_index = data.color_attributes.active_color_index
    for attribute_name in (MASK_ATTRIBUTE, GLTF_MASK_ATTRIBUTE):
        data.attributes.new(attribute_name, "FLOAT", "POINT").data.foreach_set("value", prepared.mask)
    return data


def fill_vertex_group(obj: bpy.types.Object, levels: list[tuple[float, list[int]]]) -> None:
    group = obj.vertex_groups.get(VERTEX_GROUP) or obj.vertex_groups.new(name=VERTEX_GROUP)
    for weight, members in levels:
        group.add(members, weight, "REPLACE")


def texture_image(name: str, png: bytes, size: int) -> bpy.types.Image:
    """A packed image from PNG bytes: Blender packs the file as it is and decodes it when drawn."""
    image = bpy.data.images.get(name)
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.new(name, size, size, alpha=False)
    image.pack(data=png, data_len=len(png))
    image.source = "FILE"
    image.filepath_raw = f"//{name}.png"
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


def import_steps(scene: bpy.types.Scene, outcome: EditOutcome, bridge_version: str = "") -> Iterator[None]:
    """Create or update the head's object from an edit's outcome, yielding between the parts so a
    timer can spread them over ticks; the generator's return value is the object."""
    request, mesh, prepared = outcome.request, outcome.mesh, outcome.prepared
    key, steps = request.head.key, list(request.steps)
    name = object_name(key, steps)
    data = build_mesh(name, prepared)
    yield
    data.update()
    data.validate(clean_customdata=False)
    yield
    # The shared image and material change with the object's mesh, in one tick: never the old
    # mesh drawn with the new atlas.
    image = texture_image(f"Text Edit {key}", prepared.texture_png, prepared.texture_size) if prepared.texture_png else None
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
    fill_vertex_group(obj, prepared.group_levels)
    provenance = mesh.provenance
    obj[HEAD_KEY] = key
    obj["text_edit_seed"] = request.head.seed
    obj["text_edit_params"] = json.dumps(request.head.params)
    if request.head.latent is not None:
        obj[LATENT] = json.dumps({"ws": request.head.latent, "picture_sha256": request.head.picture})
    elif LATENT in obj:
        del obj[LATENT]
    obj[STACK] = json.dumps(steps)
    obj["text_edit_edits"] = "; ".join(_describe(e) for e in provenance.get("edits", [])) or "none"
    obj["text_edit_strength"] = [float(s.get("strength", 1.0)) for s in steps] if steps else [0.0]
    obj["text_edit_bridge_version"] = provenance.get("bridge_version", bridge_version)
    obj["text_edit_generator"] = provenance.get("generator", "")
    obj[CAMERA] = json.dumps(provenance.get("camera") or {})
    if request.previews:  # a live slider's steps keep the picture of the last full edit, which may still be on its way
        obj["text_edit_job"] = outcome.job.get("id", "")
    obj[MASK_SHOWN] = False
    yield
    if request.previews:
        preview = preview_image(f"Text Edit preview {key}", outcome.preview_png)
        obj[PREVIEW] = preview.name if preview is not None else ""
    return obj


def attach_pictures(scene: bpy.types.Scene, key: str, field_job: str, preview_png: bytes) -> bpy.types.Object | None:
    """An edit's pictures, arriving after its head: shown on the head's object while it is still
    that edit's (a newer edit of the head brings its own)."""
    obj = find_head(scene, key)
    if obj is None or obj.get("text_edit_job") != field_job:
        return None
    preview = preview_image(f"Text Edit preview {key}", preview_png)
    obj[PREVIEW] = preview.name if preview is not None else ""
    return obj


def import_outcome(scene: bpy.types.Scene, outcome: EditOutcome, bridge_version: str = "") -> bpy.types.Object:
    """Create or update the head's object from an edit's outcome, all at once; returns the object."""
    steps = import_steps(scene, outcome, bridge_version)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value


def _describe(edit: dict) -> str:
    module = f" [{edit['module']}]" if edit.get("module") else ""
    return f"{edit.get('edit')} @ {edit.get('mask')} x{edit.get('strength', 1.0):g}{module}"
