"""The bridge as a local HTTP service: the long-lived process that holds the models and does the
work, so that Blender never waits on PyTorch. This package must import without torch (the client
is used from Blender's Python); the server parts import the engine lazily."""
