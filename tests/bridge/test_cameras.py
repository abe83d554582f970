import math

import pytest
import torch

from bridge.field import cameras


def test_focal_length_matches_eg3d_formula():
    assert cameras.focal_length() == pytest.approx(4.2634, abs=1e-3)
    half_fov = math.degrees(math.atan(0.5 / cameras.focal_length()))
    assert 2 * half_fov == pytest.approx(13.4, abs=0.1)


def test_frontal_pose_is_opencv_looking_down_minus_z():
    pose = cameras.orbit_pose(0.0, 0.0, pivot=(0.0, 0.0, 0.0))[0]
    assert torch.allclose(pose[:3, 3], torch.tensor([0.0, 0.0, 2.7]))
    assert torch.allclose(pose[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=1e-6)


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (30, 0), (-45, 15), (80, -25)])
def test_pivot_projects_to_image_centre(yaw, pitch):
    pose = cameras.orbit_pose(yaw, pitch)
    pivot = torch.tensor([[cameras.FFHQ_PIVOT]])
    uv = cameras.project_points(pivot, pose, cameras.intrinsics_matrix())
    assert torch.allclose(uv, torch.full_like(uv, 0.5), atol=1e-5)


def test_image_axes_follow_world_axes_in_frontal_view():
    pose = cameras.orbit_pose(0.0, 0.0)
    points = torch.tensor([[[0.1, 0.0, 0.2], [0.0, 0.1, 0.2]]])
    uv = cameras.project_points(points, pose, cameras.intrinsics_matrix())[0]
    assert uv[0, 0] > 0.5  # +x (the head's left) appears on the right of the image
    assert uv[1, 1] < 0.5  # +y (up) appears in the upper half: image rows grow downward


def test_yaw_and_pitch_move_the_camera_as_documented():
    side = cameras.orbit_pose(90.0, 0.0)[0, :3, 3]
    assert side[0] == pytest.approx(2.7, abs=1e-5) and abs(side[2]) < 1e-5
    above = cameras.orbit_pose(0.0, 30.0)[0, :3, 3]
    assert above[1] == pytest.approx(2.7 * 0.5, abs=1e-5)


def test_eg3d_sampler_frontal_matches_orbit_pose():
    ours = cameras.orbit_pose(0.0, 0.0)
    theirs = cameras.eg3d_lookat_pose(math.pi / 2, math.pi / 2)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_camera_label_round_trip():
    pose = cameras.orbit_pose([10.0, -20.0], [5.0, 0.0])
    label = cameras.camera_label(pose, cameras.intrinsics_matrix())
    assert label.shape == (2, 25)
    back_pose, back_k = cameras.split_camera_label(label)
    assert torch.equal(back_pose, pose)
    assert torch.equal(back_k[1], cameras.intrinsics_matrix())


def test_centre_ray_points_at_pivot():
    pose = cameras.orbit_pose(20.0, 10.0)
    origins, directions = cameras.ray_bundle(pose, cameras.intrinsics_matrix(), 2)
    mean_direction = torch.nn.functional.normalize(directions[0].mean(0), dim=0)
    to_pivot = torch.nn.functional.normalize(torch.tensor(cameras.FFHQ_PIVOT) - origins[0, 0], dim=0)
    assert torch.allclose(mean_direction, to_pivot, atol=1e-4)
