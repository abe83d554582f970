"""The one conversion from field space to Blender, and glTF's fixed relation to Blender.

Field space (EG3D): y up, the face looks toward +z, the box is [-0.5, 0.5]^3 in field units.
Blender: z up, right-handed, metres; the face looks toward -y (Blender's "front" view looks along +y
at it). glTF: y up, +z forward, metres; Blender's glTF importer maps glTF (x, y, z) to Blender
(x, -z, y), so a field point lands in glTF as the same axes times the scale.

Scale: METRES_PER_FIELD_UNIT = 0.45. The embedded prior's head is ~0.51 field units from chin to
crown, which becomes 0.23 m, the average adult head height (menton to vertex); EG3D's FFHQ heads
fill the box the same way.
"""

from __future__ import annotations

import math

import numpy as np

# EG3D's FFHQ camera, in field space (used by bridge/field/cameras.py and the add-on's camera):
# an orbit of radius 2.7 around the origin looking at the pivot, with EG3D's focal length.
FOV_DEG = 18.837
CAMERA_RADIUS = 2.7
FFHQ_PIVOT = (0.0, 0.0, 0.2)


def focal_length(fov_deg: float = FOV_DEG) -> float:
    """Normalised focal length exactly as EG3D computes it (including its 1.414 factor)."""
    return 1.0 / (math.tan(math.radians(fov_deg) / 2) * 1.414)


def orbit_origin(yaw_deg: float, pitch_deg: float, radius: float = CAMERA_RADIUS) -> tuple[float, float, float]:
    """Camera position on the orbit: yaw turns toward +x, positive pitch looks down on the head."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return (radius * math.cos(pitch) * math.sin(yaw), radius * math.sin(pitch), radius * math.cos(pitch) * math.cos(yaw))


METRES_PER_FIELD_UNIT = 0.45

# Rows give Blender (x, y, z) from field (x, y, z): x stays, Blender y = -field z, Blender z = field y.
# A proper rotation (determinant +1), so triangle winding and outward normals are kept.
FIELD_TO_BLENDER_ROTATION = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, -1.0],
        [0.0, 1.0, 0.0],
    ]
)
# glTF (x, y, z) from Blender (x, y, z): the glTF convention, the inverse of its importer's mapping.
BLENDER_TO_GLTF_ROTATION = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, -1.0, 0.0],
    ]
)


def field_to_blender(points: np.ndarray, scale: float = METRES_PER_FIELD_UNIT) -> np.ndarray:
    """(..., 3) field points -> (..., 3) float32 Blender points in metres.

    Pass scale=1.0 to rotate directions (normals) without scaling them.
    """
    points = np.asarray(points, dtype=np.float64)
    return (points @ FIELD_TO_BLENDER_ROTATION.T * scale).astype(np.float32)


def blender_to_gltf(points: np.ndarray) -> np.ndarray:
    """(..., 3) Blender points or directions -> (..., 3) float32 glTF ones (same units)."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ BLENDER_TO_GLTF_ROTATION.T).astype(np.float32)
