"""Blender extension entry point: Blender imports the extension folder as a package and calls
register/unregister here; the add-on itself lives in addon/."""

from .addon import register, unregister  # noqa: F401
