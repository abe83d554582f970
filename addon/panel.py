"""The "Text Edit" sidebar panel in the 3D viewport (N panel)."""

from __future__ import annotations

import bpy

from . import importer
from .properties import BRIDGE, RUNNER
from .work import step_label


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f", {minutes} min {secs:02d} s left" if minutes else f", {secs} s left"


class VIEW3D_PT_text_edit(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Text Edit"
    bl_label = "Text Edit"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.text_edit

        box = layout.box()
        row = box.row()
        row.label(text=BRIDGE.summary, icon="LINKED" if BRIDGE.connected else "UNLINKED")
        row.operator("text_edit.connect", text="", icon="FILE_REFRESH")
        status = RUNNER.status
        if RUNNER.busy:
            box.progress(factor=status.fraction, type="BAR", text=f"{status.label}: {status.stage}{_eta(status.eta_s)}")
            box.operator("text_edit.cancel", icon="CANCEL")
        elif status.message:
            box.label(text=status.message, icon="ERROR" if status.failed else "INFO")

        box = layout.box()
        box.label(text="Head", icon="USER")
        row = box.row(align=True)
        row.prop(settings, "seed")
        row.operator("text_edit.new_head", text="New head", icon="ADD")
        box.prop(settings, "head_params")
        row = box.row(align=True)
        row.operator("text_edit.head_from_image", icon="IMAGE_DATA")
        row.operator("text_edit.head_from_view", icon="CAMERA_DATA")
        box.prop(settings, "refine_steps")
        obj = context.active_object
        if obj is not None and importer.HEAD_KEY in obj:
            column = box.column(align=True)
            column.label(text=f"Active: {obj[importer.HEAD_KEY]}")
            stack = importer.stack_or_none(obj)
            for index, step in enumerate(stack or [], 1):
                column.label(text=f"{index}. {step_label(step)} x{step.get('strength', 1.0):g}", icon="MODIFIER")
            if stack is None:
                column.label(text="Its stored edit stack is damaged", icon="ERROR")
            elif not stack:
                column.label(text="No edits yet", icon="BLANK1")
            if stack:
                box.prop(context.window_manager, "text_edit_live_strength", slider=True)
            box.operator("text_edit.remove_last", icon="LOOP_BACK")
            preview = bpy.data.images.get(obj.get(importer.PREVIEW, ""))
            if preview is not None:
                box.label(text="Before | after | where it changed")
                box.template_icon(icon_value=preview.preview_ensure().icon_id, scale=6.0)

        box = layout.box()
        box.label(text="Edit", icon="GREASEPENCIL")
        box.row().prop(settings, "source", expand=True)
        if settings.source == "LIBRARY":
            box.prop(settings, "module", text="")
            chosen = next((m for m in BRIDGE.modules if m["name"] == settings.module), None)
            if chosen is not None:
                box.label(text=f"'{chosen.get('edit')}' @ '{chosen.get('mask')}'" + (" (shape)" if chosen.get("geometry") else ""))
        elif settings.source == "INSTRUCTION":
            box.prop(settings, "instruction", text="")
        else:
            box.prop(settings, "edit_prompt")
            box.prop(settings, "mask_prompt")
        box.prop(settings, "strength", slider=True)
        row = box.row()
        row.prop(settings, "texture_only")
        row.prop(settings, "grid")
        box.prop(settings, "texture_size")
        row = box.row(align=True)
        row.scale_y = 1.3
        row.operator("text_edit.edit", text="Edit", icon="PLAY").on_top = False
        row.operator("text_edit.edit", text="Apply on top", icon="ADD").on_top = True
        if settings.source == "PROMPTS":
            row = box.row(align=True)
            row.prop(settings, "training_steps")
            row.operator("text_edit.train", icon="SHADERFX")

        box = layout.box()
        row = box.row(align=True)
        shown = obj is not None and obj.get(importer.MASK_SHOWN, False)
        row.operator("text_edit.show_mask", text="Hide mask" if shown else "Show mask", icon="MOD_MASK")
        row.operator("text_edit.export_gltf", icon="EXPORT")


def on_status_change() -> None:
    """Redraw every 3D viewport's sidebar; when a task has just failed, also say why in a popup."""
    window_manager = getattr(bpy.context, "window_manager", None)
    if window_manager is None or bpy.app.background:  # no UI: operators report instead
        return
    for window in window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    status = RUNNER.status
    if status.failed and not RUNNER.busy and window_manager.windows:
        message = status.message

        def draw(menu, context):
            menu.layout.label(text=message)

        window_manager.popup_menu(draw, title="Text Edit", icon="ERROR")


CLASSES = (VIEW3D_PT_text_edit,)
