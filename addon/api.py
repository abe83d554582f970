"""Scripting Text Edit, for `blender -b --python script.py -- args` and the Python console.

    from bl_ext.user_default.text_edit.addon import api      # or api = text_edit_api() below
    api.connect(bridge_python="/path/to/.venv/bin/python")     # optional: start a local bridge
    head = api.edit(seed=3, module="blue_eyes")                # an object in the "Text Edit" collection
    api.export_glb("out/head.glb")
    api.render_preview("out/head.png")

Every call waits for its job (synchronous in background mode; in the interactive Blender the UI
waits too, so prefer the panel there) and raises TextEditError with one sentence on failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy

from ..bridge.errors import BridgeError
from . import camera, importer, operators, preferences
from .connection import MANAGED
from .properties import BRIDGE, RUNNER
from .work import HeadSpec

JOB_WAIT_S = 24 * 3600.0


class TextEditError(BridgeError):
    """A Text Edit call failed; the message says why and what to do."""


def _finish() -> None:
    RUNNER.wait(JOB_WAIT_S)
    if RUNNER.status.failed:
        raise TextEditError(RUNNER.status.message)


def connect(url: str | None = None, token: str | None = None, bridge_python: str | None = None, token_folder: str | None = None) -> dict:
    """Set the bridge preferences given, start the bridge if `bridge_python` says how, and list the
    library. Returns {"version", "modules": [names]}."""
    prefs = preferences.get()
    for name, value in (("bridge_url", url), ("token", token), ("bridge_python", bridge_python), ("token_folder", token_folder)):
        if value is not None:
            setattr(prefs, name, str(value))
    try:
        operators.start_connect(bpy.context)
    except BridgeError as error:
        raise TextEditError(str(error)) from None
    _finish()
    return {"version": BRIDGE.version, "modules": [m["name"] for m in BRIDGE.modules]}


def edit(
    seed: int = 0,
    module: str | None = None,
    edit: str | None = None,
    mask: str | None = None,
    strength: float = 1.0,
    texture_only: bool = False,
    on_top: bool = False,
    params: dict | None = None,
    grid: int | None = None,
    texture_size: int | None = None,
    instruction: str | None = None,
) -> bpy.types.Object:
    """Edit the head `seed` with a library `module`, with `edit`/`mask` prompts (any prompt: the
    open model answers those no module was trained for) or with an `instruction` sentence, and
    import the result; with none of them, import the unedited head.

    The head's object is updated in place; `on_top=True` adds the edit to its stack instead of
    replacing the last one."""
    scene = bpy.context.scene
    prefs = preferences.get()
    head = HeadSpec(int(seed), dict(params or {}))
    stack = importer.stack_of(importer.find_head(scene, head.key))
    try:
        if module is None and edit is None and instruction is None:
            steps = []
        else:
            step = operators.make_step(module, edit, mask, strength, texture_only, instruction)
            steps = stack + [step] if on_top or not stack else stack[:-1] + [step]
        operators.start_edit(
            bpy.context, head, steps, f"Edit {head.key}", grid or prefs.default_grid, texture_size or int(prefs.default_texture)
        )
    except BridgeError as error:
        raise TextEditError(str(error)) from None
    _finish()
    return bpy.data.objects[BRIDGE.last_object]


def remove_last_edit(seed: int = 0, params: dict | None = None) -> bpy.types.Object:
    head = HeadSpec(int(seed), dict(params or {}))
    obj = importer.find_head(bpy.context.scene, head.key)
    if obj is None:
        raise TextEditError(f"There is no Text Edit head '{head.key}' in this scene.")
    try:
        operators.start_edit(bpy.context, head, importer.stack_of(obj)[:-1], f"Remove last edit of {head.key}")
    except BridgeError as error:
        raise TextEditError(str(error)) from None
    _finish()
    return bpy.data.objects[BRIDGE.last_object]


def show_mask(obj: bpy.types.Object, shown: bool = True) -> None:
    importer.set_mask_shown(obj, shown)


def export_glb(path: str | Path, objects: list | None = None) -> Path:
    """Write the given heads (default: all Text Edit heads of the scene) as one .glb file."""
    heads = objects or importer.head_objects(bpy.context.scene)
    if not heads:
        raise TextEditError("There is no Text Edit head to export; call api.edit first.")
    return operators.export_glb(bpy.context, heads, Path(path))


def render_preview(path: str | Path, size: int = 512, samples: int = 32, yaw_deg: float = 20.0) -> Path:
    """A Cycles still of the scene through a camera matching the generator's (EG3D's FFHQ camera
    for the bundled prior)."""
    scene = bpy.context.scene
    return camera.render_preview(scene, Path(path), size, samples, yaw_deg, importer.model_camera(scene))


def save_blend(path: str | Path) -> Path:
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    file_paths = bpy.context.preferences.filepaths
    versions, file_paths.save_version = file_paths.save_version, 0  # no .blend1 backup beside it
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    finally:
        file_paths.save_version = versions
    return path


def provenance(obj: bpy.types.Object) -> dict:
    """The Text Edit custom properties of a head object (what glTF carries as extras)."""
    return {k: (json.loads(v) if k == importer.STACK else v) for k, v in obj.items() if k.startswith("text_edit")}


def disconnect() -> None:
    """Stop the bridge this add-on started, if any."""
    MANAGED.stop()
