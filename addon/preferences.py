"""Add-on preferences: where the bridge is, how to authenticate, how to start one, and defaults."""

import tempfile
from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from .connection import DEFAULT_URL, BridgeSettings

ADDON_ID = __package__.rpartition(".")[0]
"""The extension's package (e.g. bl_ext.user_default.text_edit): Blender keys preferences by it."""

TEXTURE_SIZES = [(str(s), f"{s} px", f"Bake a {s} x {s} texture") for s in (512, 1024, 2048, 4096)]


class TextEditPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    bridge_url: StringProperty(
        name="Bridge URL", default=DEFAULT_URL, description="Address of the Text Edit bridge (python -m bridge serve)"
    )
    token: StringProperty(
        name="Token",
        subtype="PASSWORD",
        default="",
        description="The bridge's token; leave empty to read it from the bridge's token file on this computer",
    )
    token_folder: StringProperty(
        name="Token folder",
        subtype="DIR_PATH",
        default="",
        description="The bridge's config folder holding its token; empty is the default folder",
    )
    bridge_python: StringProperty(
        name="Start bridge with",
        subtype="FILE_PATH",
        default="",
        description="A Python that has the bridge installed (e.g. .venv/bin/python); when set, "
        "Text Edit starts a bridge on this computer if none answers, and stops it on exit",
    )
    request_timeout: FloatProperty(name="Request timeout (s)", default=30.0, min=1.0, max=600.0)
    job_timeout: FloatProperty(name="Job timeout (min)", default=60.0, min=1.0, max=24 * 60.0)
    default_grid: IntProperty(
        name="Grid resolution", default=128, min=64, max=512, description="Default resolution of the field grid the mesh is extracted from"
    )
    default_texture: EnumProperty(name="Texture size", items=TEXTURE_SIZES, default="1024")

    def draw(self, context):
        layout = self.layout
        column = layout.column()
        column.prop(self, "bridge_url")
        column.prop(self, "token")
        column.prop(self, "token_folder")
        column.prop(self, "bridge_python")
        row = column.row()
        row.prop(self, "request_timeout")
        row.prop(self, "job_timeout")
        row = column.row()
        row.prop(self, "default_grid")
        row.prop(self, "default_texture")
        if not bpy.app.online_access:
            column.label(text="Online access is off: only a bridge on this computer can be used.", icon="INFO")

    def settings(self) -> BridgeSettings:
        return BridgeSettings(
            url=self.bridge_url.strip() or DEFAULT_URL,
            token=self.token,
            token_folder=bpy.path.abspath(self.token_folder),
            bridge_python=bpy.path.abspath(self.bridge_python),
            request_timeout_s=self.request_timeout,
            job_timeout_s=self.job_timeout * 60.0,
            log_file=str(Path(bpy.app.tempdir or tempfile.gettempdir()) / "text_edit_bridge.log"),
        )


def get(context=None) -> TextEditPreferences:
    return (context or bpy.context).preferences.addons[ADDON_ID].preferences


CLASSES = (TextEditPreferences,)
