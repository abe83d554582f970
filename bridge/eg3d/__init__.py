"""Users' EG3D checkpoints. So far: reading them safely (checkpoint.py). Mapping their state onto
bridge/field's classes at EG3D's released sizes is not built yet; see docs/eg3d.md."""
