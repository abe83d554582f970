"""The Blender side of Text Edit: everything that imports bpy (panel, operators, preferences,
import of edited fields, scripting API). It never imports torch and talks to the bridge only over
HTTP.

Not built yet: the "Text Edit" panel, operators and importer arrive with the add-on issue. Until
then the extension registers nothing, so enabling it is harmless.
"""

_CLASSES: tuple = ()


def register() -> None:
    import bpy

    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    import bpy

    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
