"""The Blender camera of addon/camera.py sees field points where EG3D's camera does."""

import torch

from bridge.field.cameras import intrinsics_matrix, orbit_pose, project_points
from bridge.field.renderer import RenderConfig
from mesh_export import field_to_blender

POINTS = [(0.0, 0.0, 0.2), (0.12, 0.05, 0.1), (-0.2, 0.15, 0.0), (0.05, -0.22, 0.15), (0.3, 0.3, -0.1)]


CARS = {"radius": 1.7, "pivot": [0.0, 0.0, 0.0], "focal": 1.025390625}


def test_blender_camera_projects_field_points_like_eg3d(blender):
    views = [(20.0, 0.0, None), (-35.0, 12.0, None), (0.0, -8.0, None), (30.0, 10.0, CARS)]
    blender_points = [field_to_blender(p).tolist() for p in POINTS]
    done, found = blender.run(
        "from bpy_extras.object_utils import world_to_camera_view\n"
        "from mathutils import Vector\n"
        "camera = importlib.import_module('bl_ext.user_default.text_edit.addon.camera')\n"
        "scene = bpy.context.scene\n"
        "scene.render.resolution_x = scene.render.resolution_y = 512\n"
        f"points = {blender_points!r}\n"
        "out = []\n"
        f"for yaw, pitch, model in {views!r}:\n"
        "    cam = camera.eg3d_camera(scene, yaw, pitch, model)\n"
        "    bpy.context.view_layer.update()\n"
        "    out.append([list(world_to_camera_view(scene, cam, Vector(p)))[:2] for p in points])\n"
        "result(out)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for (yaw, pitch, model), seen in zip(views, found):
        if model is None:
            pose, intrinsics = orbit_pose(yaw, pitch), intrinsics_matrix()
        else:
            config = RenderConfig(camera_radius=model["radius"], camera_pivot=tuple(model["pivot"]), focal=model["focal"])
            pose, intrinsics = config.orbit(yaw, pitch), config.intrinsics()
        expected = project_points(torch.tensor([POINTS]), pose, intrinsics)[0]
        blender_xy = torch.tensor(seen)
        # Blender's camera view has y up from the bottom; EG3D's image y runs down from the top.
        assert torch.allclose(blender_xy[:, 0], expected[:, 0], atol=2e-4), (yaw, pitch)
        assert torch.allclose(1 - blender_xy[:, 1], expected[:, 1], atol=2e-4), (yaw, pitch)
