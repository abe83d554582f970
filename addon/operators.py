"""The panel's buttons. Each validates its input on the main thread, then hands the slow part to
the Runner (tasks.py): network and meshing in a worker thread, the import back on the main thread.
In `blender -b` the same operators run synchronously and report errors as operator errors."""

import json
from collections.abc import Callable
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..bridge.errors import BridgeError
from ..bridge.service.client import BridgeClient
from ..bridge.service.settings import LIMITS
from . import importer, preferences
from .connection import MANAGED, BridgeSettings, make_client
from .mesher import MESHER
from .properties import BRIDGE, RUNNER
from .tasks import Task
from .work import EditRequest, HeadSpec, fetch_pictures, run_edit, run_head_from_picture, run_training


def connect(settings: BridgeSettings, online_access: bool) -> BridgeClient:
    """Worker thread: start the configured local bridge if none answers, then a client for it."""
    MANAGED.ensure(settings)
    return make_client(settings, online_access)


class RemoteJob:
    """The client and bridge job of one task, so that Cancel can stop the job on the bridge too."""

    def __init__(self, settings: BridgeSettings, online_access: bool):
        self.settings, self.online_access = settings, online_access
        self.client: BridgeClient | None = None
        self.job_ids: list[str] = []

    def connect(self) -> BridgeClient:
        self.client = connect(self.settings, self.online_access)
        return self.client

    def started(self, job_id: str) -> None:
        self.job_ids.append(job_id)

    def cancel(self) -> None:
        MESHER.interrupt()  # the field may be being meshed already
        if self.client is not None:
            for job_id in self.job_ids:
                self.client.cancel(job_id)


def current_head(context) -> tuple[HeadSpec, list[dict]]:
    """The active Text Edit head and its stack, or the panel's seed (and its object's stack, if any)."""
    obj = context.active_object
    if obj is not None and importer.HEAD_KEY in obj:
        return head_of(obj), importer.stack_of(obj)
    head = panel_head(context.scene.text_edit)
    return head, importer.stack_of(importer.find_head(context.scene, head.key))


def head_of(obj) -> HeadSpec:
    """The head a Text Edit object was made from (a seed, or a picture's latent)."""
    if importer.LATENT in obj:
        try:
            latent = json.loads(obj[importer.LATENT])
            rows = tuple(tuple(float(v) for v in row) for row in latent["ws"])
            return HeadSpec(latent=rows, picture=str(latent.get("picture_sha256", "")))
        except (ValueError, KeyError, TypeError):
            raise BridgeError(f"The picture head stored on {obj.name} is damaged; make it again with Head from image.") from None
    try:
        seed, params = int(obj["text_edit_seed"]), json.loads(obj.get("text_edit_params", "{}"))
    except (KeyError, TypeError, ValueError):
        params = None
    if not isinstance(params, dict) or not 0 <= seed < 2**31:
        raise BridgeError(
            f"The head stored on {obj.name} (its text_edit_seed or text_edit_params property) is damaged; make the head again or fix the property."
        )
    return HeadSpec(seed, params)


def panel_head(settings) -> HeadSpec:
    return HeadSpec(settings.seed, parse_params(settings.head_params))


def parse_params(text: str) -> dict:
    """'eye_colour=brown, hair_length=0.3' -> {"eye_colour": "brown", "hair_length": 0.3}."""
    params = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = (x.strip() for x in item.partition("="))
        if not equals or not key or not value:
            raise BridgeError(f"Cannot read the prior parameter {item!r}; write name=value, separated by commas.")
        try:
            params[key] = float(value)
        except ValueError:
            params[key] = value
    return params


def step_from_panel(settings) -> dict:
    """One bridge edit step from the panel, checked here so that the artist hears why at once."""
    if settings.source == "LIBRARY":
        if not BRIDGE.modules or settings.module == "NONE":
            raise BridgeError("No edit chosen; press Connect to list the bridge's trained edits.")
        return make_step(module=settings.module, strength=settings.strength, texture_only=settings.texture_only)
    if settings.source == "INSTRUCTION":
        return make_step(instruction=settings.instruction, strength=settings.strength, texture_only=settings.texture_only)
    return make_step(edit=settings.edit_prompt, mask=settings.mask_prompt, strength=settings.strength, texture_only=settings.texture_only)


def make_step(
    module: str | None = None,
    edit: str | None = None,
    mask: str | None = None,
    strength: float = 1.0,
    texture_only: bool = False,
    instruction: str | None = None,
) -> dict:
    """A bridge edit step: a library module, an edit and a mask prompt (a trained module for them
    if the library has one, else the open model), or an instruction sentence."""
    if module:
        step = {"module": module}
    elif instruction is not None:
        step = {"instruction": check_prompt("instruction", instruction, LIMITS.edit_prompt_chars)}
    else:
        step = {
            "edit": check_prompt("edit", edit or "", LIMITS.edit_prompt_chars),
            "mask": check_prompt("mask", mask or "", LIMITS.mask_prompt_chars),
        }
    if not 0.0 <= strength <= 1.5:
        raise BridgeError(f"Edit strength must lie between 0 and 1.5, got {strength:g}.")
    step["strength"] = round(float(strength), 4)
    if texture_only:
        step["texture_only"] = True
    return step


def check_prompt(which: str, text: str, limit: int) -> str:
    text = " ".join(text.split())
    if not text:
        hint = {"edit": "what to change", "mask": "where to edit", "instruction": "a sentence such as 'make the eyes green'"}[which]
        raise BridgeError(f"The {which} prompt is empty; type {hint}.")
    if len(text) > limit:
        raise BridgeError(f"The {which} prompt has {len(text)} characters; the bridge accepts at most {limit}.")
    return text


def start_edit(
    context,
    head: HeadSpec,
    steps: list[dict],
    label: str,
    grid: int | None = None,
    texture_size: int | None = None,
    previews: bool = True,
    undo: bool = True,
    then: Callable[[], None] | None = None,
) -> None:
    """Edit `head` with `steps` on the bridge and import the result (grid and texture from the panel
    by default); `undo`: one undo step for it; `then`: called on the main thread once it is in."""
    if len(steps) > LIMITS.stack_steps:
        raise BridgeError(f"A head can carry at most {LIMITS.stack_steps} stacked edits; remove one first.")
    settings = context.scene.text_edit
    bridge = preferences.get(context).settings()
    request = EditRequest(
        head, tuple(steps), grid=grid or settings.grid, texture_size=texture_size or int(settings.texture_size), previews=previews
    )
    remote = RemoteJob(bridge, bool(bpy.app.online_access))

    def work(progress):
        return run_edit(remote.connect(), request, progress, bridge.job_timeout_s, on_job=remote.started, pictures_later=_pictures_later())

    RUNNER.start(Task(label, work, _importing(label, remote, bridge.job_timeout_s, undo, then), remote.cancel))


def _pictures_later() -> bool:
    """Heads are imported before their pictures arrive, except where tasks run synchronously
    (background mode): a script wants the finished head, picture and CLIP's sentence included,
    when the operator returns."""
    return not RUNNER.background


def _importing(label: str, remote: RemoteJob, timeout_s: float, undo: bool = True, then: Callable[[], None] | None = None):
    def done(outcome):
        """The import, in parts over timer ticks (a generator; Runner spreads it); then the
        pictures, if the bridge is still rendering them, as a follow-up."""
        obj = yield from importer.import_steps(bpy.context.scene, outcome)
        _make_active(obj)
        BRIDGE.last_object = obj.name
        if undo:
            _undo_push(f"Text Edit: {label}")
        if then is not None:
            then()
        if outcome.pictures_job is not None and remote.client is not None:
            _follow_pictures(remote.client, outcome, timeout_s)
        said = outcome.job.get("info", {}).get("message")
        return f"{obj.name}: {len(obj.data.polygons)} triangles imported." + (f" {said}" if said else "")

    return done


def _follow_pictures(client: BridgeClient, outcome, timeout_s: float) -> None:
    """Show an edit's pictures on its head when the bridge has them, and CLIP's sentence in the panel."""
    key, field_job = outcome.request.head.key, outcome.job.get("id", "")
    import_status = RUNNER.status

    def arrived(pictures: tuple[bytes, dict]) -> None:
        preview, said = pictures
        obj = importer.attach_pictures(bpy.context.scene, key, field_job, preview)
        message = said.get("message")
        if obj is not None and message and RUNNER.status is import_status and not RUNNER.busy and not RUNNER.status.failed:
            RUNNER.status.message = f"{RUNNER.status.message} {message}".strip()

    RUNNER.follow_up("the edit's pictures", lambda: fetch_pictures(client, outcome.pictures_job, timeout_s), arrived)


def start_picture_head(
    context, picture: bytes, label: str, crop: tuple[int, int, int] | None = None, yaw: float | None = None, pitch: float | None = None
) -> None:
    """Make a head on the bridge from a picture (refined as the panel says) and import it unedited."""
    settings = context.scene.text_edit
    bridge = preferences.get(context).settings()
    remote = RemoteJob(bridge, bool(bpy.app.online_access))
    refine, grid, texture_size = int(settings.refine_steps), settings.grid, int(settings.texture_size)

    def work(progress):
        client = remote.connect()
        head = run_head_from_picture(
            client, picture, refine, progress.within(0.0, 0.6), bridge.job_timeout_s, crop, yaw, pitch, on_job=remote.started
        )
        request = EditRequest(head, (), grid=grid, texture_size=texture_size)
        progress = progress.within(0.6, 1.0)
        return run_edit(client, request, progress, bridge.job_timeout_s, on_job=remote.started, pictures_later=_pictures_later())

    RUNNER.start(Task(label, work, _importing(label, remote, bridge.job_timeout_s), remote.cancel))


def _make_active(obj) -> None:
    try:
        layer = bpy.context.view_layer
        for other in layer.objects.selected:
            other.select_set(False)
        obj.select_set(True)
        layer.objects.active = obj
    except (AttributeError, RuntimeError):  # no view layer in this context: leave the selection alone
        pass


def _undo_push(message: str) -> None:
    if not bpy.app.background:
        try:
            bpy.ops.ed.undo_push(message=message)
        except RuntimeError:
            pass


def start_connect(context) -> None:
    """Start the configured local bridge if none answers, then fetch its version and library."""
    bridge = preferences.get(context).settings()
    online = bool(bpy.app.online_access)

    def work(progress):
        progress(0.1, "contacting the bridge")
        client = connect(bridge, online)
        MESHER.start()  # the meshing helper's imports now, not during the first edit
        return client.info(), client.modules()

    def done(answer) -> str:
        info, modules = answer
        BRIDGE.connected, BRIDGE.version = True, info.get("version", "")
        BRIDGE.modules = [m for m in modules if m.get("usable", True)]
        BRIDGE.summary = f"Bridge {BRIDGE.version} on {info.get('device', '?')}: {len(BRIDGE.modules)} trained edits"
        settings = bpy.context.scene.text_edit
        if BRIDGE.modules and settings.module not in {m["name"] for m in BRIDGE.modules}:
            settings.module = BRIDGE.modules[0]["name"]
        return BRIDGE.summary + "."

    RUNNER.start(Task("Connect", work, done))


class _Operator(bpy.types.Operator):
    """Shared execute: run `start`, turn a BridgeError into one reported sentence."""

    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            self.start(context)
        except BridgeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if bpy.app.background:  # the task has already run
            if RUNNER.status.failed:
                self.report({"ERROR"}, RUNNER.status.message)
                return {"CANCELLED"}
            self.report({"INFO"}, RUNNER.status.message)
        return {"FINISHED"}

    def start(self, context) -> None:
        raise NotImplementedError

    @classmethod
    def poll(cls, context):
        return not RUNNER.busy


class TEXT_EDIT_OT_connect(_Operator):
    """Check the bridge (starting it if the preferences say how) and list its trained edits"""

    bl_idname = "text_edit.connect"
    bl_label = "Connect"

    def start(self, context) -> None:
        start_connect(context)


class TEXT_EDIT_OT_new_head(_Operator):
    """Import the panel's seed as an unedited head (or refresh it)"""

    bl_idname = "text_edit.new_head"
    bl_label = "New head"

    def start(self, context) -> None:
        head = panel_head(context.scene.text_edit)
        start_edit(context, head, [], f"New head {head.key}")


class TEXT_EDIT_OT_head_from_image(_Operator, ImportHelper):
    """Make a head from a picture file (a face to the camera) and import it unedited"""

    bl_idname = "text_edit.head_from_image"
    bl_label = "Head from image"
    filter_glob: StringProperty(default="*.png;*.jpg;*.jpeg", options={"HIDDEN"})

    def start(self, context) -> None:
        from .picture import read_picture

        start_picture_head(context, read_picture(self.filepath), f"Head from {Path(self.filepath).name}")


class TEXT_EDIT_OT_head_from_view(_Operator):
    """Render the selected head through the active camera and make a new head from that picture"""

    bl_idname = "text_edit.head_from_view"
    bl_label = "Head from view"

    @classmethod
    def poll(cls, context):
        return super().poll(context) and context.scene.camera is not None and context.active_object is not None

    def start(self, context) -> None:
        from .picture import VIEW_SIZE, render_view, view_of_head

        scene, head = context.scene, context.active_object
        crop, yaw, pitch = view_of_head(scene, scene.camera, head, VIEW_SIZE)
        start_picture_head(context, render_view(scene, VIEW_SIZE), f"Head from the view of {head.name}", crop, yaw, pitch)


class TEXT_EDIT_OT_edit(_Operator):
    """Apply the edit to the active head: replace its last edit, or add it on top of the stack"""

    bl_idname = "text_edit.edit"
    bl_label = "Edit"

    on_top: BoolProperty(name="On top", default=False, description="Add to the head's stack instead of replacing its last edit")

    def start(self, context) -> None:
        head, stack = current_head(context)
        step = step_from_panel(context.scene.text_edit)
        steps = stack + [step] if self.on_top or not stack else stack[:-1] + [step]
        start_edit(context, head, steps, f"Edit {head.key}")


class TEXT_EDIT_OT_remove_last(_Operator):
    """Remove the last edit of the active head's stack"""

    bl_idname = "text_edit.remove_last"
    bl_label = "Remove last edit"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return not RUNNER.busy and obj is not None and bool(importer.stack_or_none(obj))

    def start(self, context) -> None:
        head, stack = current_head(context)
        start_edit(context, head, stack[:-1], f"Remove last edit of {head.key}")


class TEXT_EDIT_OT_train(_Operator):
    """Train a new edit module for the prompts on the bridge (minutes to hours; shows an ETA)"""

    bl_idname = "text_edit.train"
    bl_label = "Train new edit"

    def start(self, context) -> None:
        settings = context.scene.text_edit
        edit = check_prompt("edit", settings.edit_prompt, LIMITS.edit_prompt_chars)
        mask = check_prompt("mask", settings.mask_prompt, LIMITS.mask_prompt_chars)
        bridge = preferences.get(context).settings()
        geometry, steps = not settings.texture_only, settings.training_steps
        remote = RemoteJob(bridge, bool(bpy.app.online_access))

        def work(progress):
            client = remote.connect()
            job = run_training(client, edit, mask, geometry, steps, progress, bridge.job_timeout_s, on_job=remote.started)
            return job, client.modules()

        def done(answer) -> str:
            job, modules = answer
            BRIDGE.modules = [m for m in modules if m.get("usable", True)]
            name = job.get("info", {}).get("module") if isinstance(job.get("info"), dict) else None
            if name:
                bpy.context.scene.text_edit.module = name
            return f"Trained '{edit}' @ '{mask}'" + (f" as {name}." if name else ".")

        RUNNER.start(Task(f"Train {edit}", work, done, remote.cancel))


class TEXT_EDIT_OT_cancel(bpy.types.Operator):
    """Cancel the running Text Edit job (the bridge stops it too)"""

    bl_idname = "text_edit.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return RUNNER.busy

    def execute(self, context):
        RUNNER.cancel()
        return {"FINISHED"}


class TEXT_EDIT_OT_show_mask(bpy.types.Operator):
    """Show the edit's 3D attention mask as colour on the active head (or its texture again)"""

    bl_idname = "text_edit.show_mask"
    bl_label = "Show mask"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and importer.HEAD_KEY in context.active_object

    def execute(self, context):
        obj = context.active_object
        importer.set_mask_shown(obj, not obj.get(importer.MASK_SHOWN, False))
        space = context.space_data
        if getattr(space, "type", "") == "VIEW_3D" and space.shading.type == "SOLID":
            space.shading.color_type = "MATERIAL"
        return {"FINISHED"}


class TEXT_EDIT_OT_export_gltf(bpy.types.Operator, ExportHelper):
    """Export the selected Text Edit heads (or all of them) as glTF binary, with texture, mask and provenance"""

    bl_idname = "text_edit.export_gltf"
    bl_label = "Export glTF"
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb", options={"HIDDEN"})
    which: EnumProperty(name="Heads", items=[("SELECTED", "Selected", ""), ("ALL", "All", "")], default="SELECTED")

    def execute(self, context):
        heads = importer.head_objects(context.scene)
        if self.which == "SELECTED":
            heads = [o for o in heads if o.select_get()] or heads
        if not heads:
            self.report({"ERROR"}, "There is no Text Edit head to export; make one with New head or Edit first.")
            return {"CANCELLED"}
        try:
            path = export_glb(context, heads, Path(self.filepath))
        except (OSError, RuntimeError) as error:
            self.report({"ERROR"}, f"Could not write {self.filepath} ({error}); choose another place.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {len(heads)} head(s) to {path}.")
        return {"FINISHED"}


def export_glb(context, heads: list, path: Path) -> Path:
    """glTF binary with the texture, vertex colours, `_EDIT_MASK` and provenance extras."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = [o for o in heads if o.get(importer.MASK_SHOWN)]
    for obj in shown:
        importer.set_mask_shown(obj, False)
    selected = list(context.selected_objects) if hasattr(context, "selected_objects") else []
    active = context.view_layer.objects.active
    try:
        for obj in selected:
            obj.select_set(False)
        for obj in heads:
            obj.select_set(True)
        bpy.ops.export_scene.gltf(
            filepath=str(path),
            export_format="GLB",
            use_selection=True,
            export_extras=True,
            export_attributes=True,
            export_vertex_color="ACTIVE",
            export_yup=True,
        )
    finally:
        for obj in heads:
            obj.select_set(False)
        for obj in selected:
            obj.select_set(True)
        context.view_layer.objects.active = active
        for obj in shown:
            importer.set_mask_shown(obj, True)
    return path


CLASSES = (
    TEXT_EDIT_OT_connect,
    TEXT_EDIT_OT_new_head,
    TEXT_EDIT_OT_head_from_image,
    TEXT_EDIT_OT_head_from_view,
    TEXT_EDIT_OT_edit,
    TEXT_EDIT_OT_remove_last,
    TEXT_EDIT_OT_train,
    TEXT_EDIT_OT_cancel,
    TEXT_EDIT_OT_show_mask,
    TEXT_EDIT_OT_export_gltf,
)
