"""Blender extension entry point: Blender imports the extension folder as a package and calls
register/unregister here; the add-on itself lives in addon/.

pytest also imports this file while collecting tests, as a plain module when the checkout's folder
name is not a valid package name (e.g. `tmp.Ab12`); there is no add-on to load then."""

if __package__:
    from .addon import register, unregister  # noqa: F401
