"""Developer tools that never ship: building the Blender extension and running scripts through
the bpy module the way `blender -b --python` would."""
