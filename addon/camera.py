"""EG3D's camera as a Blender camera, and a Cycles preview render through it.

EG3D (its conventions live in mesh_export/coords.py, shared with the bridge): the camera sits on a sphere of radius 2.7 field units around the
origin and looks at the pivot (0, 0, 0.2); its normalised focal length is
1 / (tan(18.837 deg / 2) * 1.414). Blender sets a camera by focal length in millimetres on a sensor:
lens = f * sensor width, with a square image and the sensor fitted horizontally, which gives the
same picture (setting Blender's FOV to 18.837 deg would not, because of EG3D's 1.414 factor).
Positions go through mesh_export's one field -> Blender conversion, so they are in metres.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import mathutils

from ..mesh_export import coords

SENSOR_WIDTH_MM = 36.0
CAMERA_NAME = "Text Edit camera"


def eg3d_camera(
    scene: bpy.types.Scene, yaw_deg: float = 20.0, pitch_deg: float = 0.0, model_camera: dict | None = None
) -> bpy.types.Object:
    """The scene's "Text Edit camera" (made if missing) placed like EG3D's at these angles.

    `model_camera`: the generator's orbit as the bridge reports it in a FieldGrid's provenance
    ({"radius", "pivot", "focal"}, e.g. ShapeNet cars' 1.7, origin, 1.025); FFHQ's by default."""
    model_camera = model_camera or {}
    radius = float(model_camera.get("radius", coords.CAMERA_RADIUS))
    pivot = tuple(model_camera.get("pivot", coords.FFHQ_PIVOT))
    focal = float(model_camera.get("focal", coords.focal_length()))
    camera = bpy.data.objects.get(CAMERA_NAME)
    if camera is None:
        camera = bpy.data.objects.new(CAMERA_NAME, bpy.data.cameras.new(CAMERA_NAME))
        scene.collection.objects.link(camera)
    camera.data.sensor_fit = "HORIZONTAL"
    camera.data.sensor_width = SENSOR_WIDTH_MM
    camera.data.lens = focal * SENSOR_WIDTH_MM
    camera.data.clip_start, camera.data.clip_end = 0.05, 10.0
    location = mathutils.Vector(coords.field_to_blender(coords.orbit_origin(yaw_deg, pitch_deg, radius)).tolist())
    target = mathutils.Vector(coords.field_to_blender(pivot).tolist())
    camera.location = location
    camera.rotation_mode = "QUATERNION"
    camera.rotation_quaternion = (target - location).to_track_quat("-Z", "Y")
    scene.camera = camera
    return camera


def _lights(scene: bpy.types.Scene) -> None:
    """A soft key light and a grey world, only when the scene has no lights of its own."""
    if any(o.type == "LIGHT" for o in scene.objects):
        return
    light = bpy.data.objects.new("Text Edit key light", bpy.data.lights.new("Text Edit key light", "AREA"))
    light.data.energy, light.data.size = 60.0, 1.0
    light.location = coords.field_to_blender((1.2, 1.0, 2.0)).tolist()
    light.rotation_mode = "QUATERNION"
    light.rotation_quaternion = (-mathutils.Vector(light.location)).to_track_quat("-Z", "Y")
    scene.collection.objects.link(light)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("Text Edit world")
    scene.world.use_nodes = True
    background = scene.world.node_tree.nodes.get("Background")
    if background is not None:
        background.inputs["Color"].default_value = (0.6, 0.6, 0.62, 1.0)
        background.inputs["Strength"].default_value = 0.8


def render_preview(
    scene: bpy.types.Scene, path: Path, size: int = 512, samples: int = 32, yaw_deg: float = 20.0, model_camera: dict | None = None
) -> Path:
    """A Cycles still through the EG3D camera (of `model_camera`, see eg3d_camera), saved as PNG."""
    eg3d_camera(scene, yaw_deg, model_camera=model_camera)
    _lights(scene)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(Path(path).resolve())
    bpy.ops.render.render(write_still=True)
    return Path(path)
