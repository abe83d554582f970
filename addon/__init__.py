"""The Blender side of Text Edit: everything that imports bpy. It never imports torch; it talks to
the bridge over HTTP with the bridge's standard-library client, which the extension carries.

Modules: preferences (bridge URL, token, start command, defaults), properties (the panel's scene
settings, the add-on's view of the bridge), tasks (background work: worker thread + timer queue),
work (what the worker does: bridge calls and meshing, no bpy), importer (mesh, material, mask,
vertex group, provenance), camera (EG3D's camera in Blender, Cycles preview), operators, panel,
api (headless scripting). See docs/addon.md.
"""

from __future__ import annotations


def register() -> None:
    import bpy

    from . import operators, panel, preferences, properties

    for cls in (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panel.CLASSES):
        bpy.utils.register_class(cls)
    properties.attach()
    properties.RUNNER.background = bool(bpy.app.background)
    properties.RUNNER.on_change = panel.on_status_change


def unregister() -> None:
    import bpy

    from . import connection, mesher, operators, panel, preferences, properties

    properties.RUNNER.shutdown()
    mesher.MESHER.stop()
    from .live import LIVE

    if bpy.app.timers.is_registered(LIVE.timer_callback):
        bpy.app.timers.unregister(LIVE.timer_callback)
    if bpy.app.timers.is_registered(properties.RUNNER.timer_callback):
        bpy.app.timers.unregister(properties.RUNNER.timer_callback)
    connection.MANAGED.stop()
    properties.detach()
    for cls in reversed((*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panel.CLASSES)):
        bpy.utils.unregister_class(cls)
