"""What the panel edits: the scene's Text Edit settings, and what the add-on knows of the bridge."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .preferences import TEXTURE_SIZES
from .tasks import Runner


class BridgeState:
    """The add-on's view of the bridge, refreshed by "Connect" (main thread only)."""

    def __init__(self) -> None:
        self.connected = False
        self.summary = "Not connected"
        self.version = ""
        self.modules: list[dict] = []
        self.last_object: str | None = None


BRIDGE = BridgeState()
RUNNER = Runner()
_module_items: list[tuple[str, str, str]] = []  # Blender needs the enum strings kept alive


def module_items(self, context):
    _module_items[:] = [(m["name"], m["name"].replace("_", " "), f"{m.get('edit', '')} @ {m.get('mask', '')}") for m in BRIDGE.modules] or [
        ("NONE", "No modules (connect first)", "Connect to the bridge to list its trained edits")
    ]
    return _module_items


class TextEditSettings(bpy.types.PropertyGroup):
    seed: IntProperty(name="Seed", default=3, min=0, max=2**31 - 1, description="The head of the prior to edit")
    head_params: StringProperty(
        name="Prior", default="", description="Optional prior parameters for the head, e.g. 'eye_colour=brown, hair_length=0.3'"
    )
    refine_steps: IntProperty(
        name="Refine",
        default=30,
        min=0,
        max=200,
        description="Steps the bridge refines a head made from a picture against it (about 0.5 s each on 2 CPU cores; 0: the encoder alone)",
    )
    source: EnumProperty(
        name="Edit from",
        items=[
            ("LIBRARY", "Library", "Apply a trained edit module from the bridge's library"),
            (
                "PROMPTS",
                "Prompts",
                "Describe the edit and where it applies: any prompt edits at once (the open model; "
                "a module trained for the same prompts is used when there is one)",
            ),
            ("INSTRUCTION", "Sentence", "Say it in a sentence, e.g. 'make the eyes green'; the bridge reads it into an edit and a mask"),
        ],
        default="LIBRARY",
    )
    instruction: StringProperty(
        name="Instruction", default="make the eyes green", description="A sentence such as 'give her pink hair' or 'open the mouth wide'"
    )
    module: EnumProperty(name="Edit", items=module_items, description="A trained edit of the bridge's library")
    edit_prompt: StringProperty(name="Edit", default="blue eyes", description="What to change, e.g. 'blue eyes'")
    mask_prompt: StringProperty(name="Where", default="eyes", description="Where the edit applies, e.g. 'eyes'")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=1.5, description="How far the edit goes (1 is as trained)")
    texture_only: BoolProperty(
        name="Texture only",
        default=False,
        description="Change colours only and leave the shape alone (no Deformation Network); a prompt of colours only, like 'red hair', does so anyway",
    )
    grid: IntProperty(name="Grid", default=128, min=64, max=512, description="Resolution of the field grid the mesh comes from")
    texture_size: EnumProperty(name="Texture", items=TEXTURE_SIZES, default="1024")
    training_steps: IntProperty(name="Training steps", default=800, min=1, max=20000)


CLASSES = (TextEditSettings,)


def _live_slider(window_manager, context) -> None:
    from .live import on_slider

    on_slider(window_manager, context)


def attach() -> None:
    bpy.types.Scene.text_edit = bpy.props.PointerProperty(type=TextEditSettings)
    # On the window manager: dragging it is not an undo step (the edit it ends in is one).
    bpy.types.WindowManager.text_edit_live_strength = FloatProperty(
        name="Live strength",
        default=1.0,
        min=0.0,
        max=1.5,
        update=_live_slider,
        description="Drag to re-edit the active head's last edit as you go (coarse while dragging, full when you let go)",
    )


def detach() -> None:
    del bpy.types.Scene.text_edit
    del bpy.types.WindowManager.text_edit_live_strength
