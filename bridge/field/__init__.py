"""EG3D-style tri-plane radiance fields in plain PyTorch.

Field space is EG3D's: the box [-0.5, 0.5]^3 (scaled by `box_size`), y up, the face toward +z.
Cameras are OpenCV cam2world matrices with normalised intrinsics (see `cameras`).
"""
