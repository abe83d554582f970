"""EG3D camera conventions.

- Poses are OpenCV cam2world 4x4 matrices: camera x right, y down, z forward (into the scene);
  world y is up.
- Intrinsics are normalised by the image size: [[f, 0, 0.5], [0, f, 0.5], [0, 0, 1]].
- A camera label is 25 numbers: the flattened 4x4 pose, then the flattened 3x3 intrinsics.
- FFHQ heads: the camera orbits at radius 2.7 around the world origin and looks at the pivot
  (0, 0, 0.2). EG3D states fov 18.837 deg but computes f = 1 / (tan(fov/2) * 1.414), so the
  effective horizontal field of view is about 13.4 deg (a ~153 mm lens on a 36 mm sensor).

Our orbit angles are plain angles: yaw turns the camera about the world y axis (positive yaw moves
the camera toward +x), pitch raises it (positive pitch looks down on the head). EG3D's own
LookAtPoseSampler uses another parametrisation (phi = arccos(1 - 2v/pi)); `eg3d_lookat_pose`
reproduces it for parity with released code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mesh_export.coords import CAMERA_RADIUS, FFHQ_PIVOT, FOV_DEG, focal_length  # noqa: F401  (the one definition)


def intrinsics_matrix(fov_deg: float = FOV_DEG, focal: float | None = None) -> Tensor:
    """Normalised intrinsics of EG3D's camera with this field of view (or this focal length)."""
    f = focal_length(fov_deg) if focal is None else focal
    return torch.tensor([[f, 0.0, 0.5], [0.0, f, 0.5], [0.0, 0.0, 1.0]])


def look_at(origin: Tensor, target: Tensor) -> Tensor:
    """origin, target (B, 3) -> OpenCV cam2world (B, 4, 4), world y up, no roll."""
    forward = torch.nn.functional.normalize(target - origin, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0], device=origin.device).expand_as(forward)
    right = -torch.nn.functional.normalize(torch.cross(up, forward, dim=-1), dim=-1)
    down = torch.nn.functional.normalize(torch.cross(forward, right, dim=-1), dim=-1)
    pose = torch.eye(4, device=origin.device).repeat(origin.shape[0], 1, 1)
    pose[:, :3, :3] = torch.stack([right, down, forward], dim=-1)
    pose[:, :3, 3] = origin
    return pose


def orbit_pose(
    yaw_deg: float | Tensor,
    pitch_deg: float | Tensor,
    radius: float = CAMERA_RADIUS,
    pivot: tuple[float, float, float] = FFHQ_PIVOT,
) -> Tensor:
    """Camera on a sphere of `radius` around the world origin, looking at `pivot`. -> (B, 4, 4)."""
    yaw = torch.deg2rad(torch.as_tensor(yaw_deg, dtype=torch.float32).reshape(-1))
    pitch = torch.deg2rad(torch.as_tensor(pitch_deg, dtype=torch.float32).reshape(-1))
    yaw, pitch = torch.broadcast_tensors(yaw, pitch)
    origin = radius * torch.stack([torch.cos(pitch) * torch.sin(yaw), torch.sin(pitch), torch.cos(pitch) * torch.cos(yaw)], dim=-1)
    return look_at(origin, torch.tensor(pivot).expand_as(origin))


def eg3d_lookat_pose(horizontal: float, vertical: float, radius: float = CAMERA_RADIUS, pivot=FFHQ_PIVOT) -> Tensor:
    """EG3D's LookAtPoseSampler.sample(horizontal, vertical, pivot, radius) without noise.

    horizontal = vertical = pi/2 is the frontal view. -> (1, 4, 4)."""
    vertical = min(max(vertical, 1e-5), math.pi - 1e-5)
    phi = math.acos(1 - 2 * vertical / math.pi)
    theta = horizontal
    origin = radius * torch.tensor([[math.sin(phi) * math.cos(math.pi - theta), math.cos(phi), math.sin(phi) * math.sin(math.pi - theta)]])
    return look_at(origin, torch.tensor([pivot]))


def camera_label(cam2world: Tensor, intrinsics: Tensor) -> Tensor:
    """(B, 4, 4), (B, 3, 3) or (3, 3) -> the 25-number EG3D label (B, 25)."""
    intrinsics = intrinsics.expand(cam2world.shape[0], 3, 3)
    return torch.cat([cam2world.reshape(-1, 16), intrinsics.reshape(-1, 9)], dim=1)


def split_camera_label(label: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 25) -> cam2world (B, 4, 4), intrinsics (B, 3, 3)."""
    return label[:, :16].reshape(-1, 4, 4), label[:, 16:25].reshape(-1, 3, 3)


def project_points(points: Tensor, cam2world: Tensor, intrinsics: Tensor) -> Tensor:
    """World points (B, M, 3) -> normalised image coordinates (B, M, 2) in [0, 1] across the image."""
    world2cam = torch.linalg.inv(cam2world)
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    cam = (homogeneous @ world2cam.transpose(1, 2))[..., :3]
    pixels = cam @ intrinsics.expand(points.shape[0], 3, 3).transpose(1, 2)
    return pixels[..., :2] / pixels[..., 2:3]


def ray_bundle(cam2world: Tensor, intrinsics: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """One ray through the centre of every pixel, row-major (row = image y).

    -> origins (B, R*R, 3), unit directions (B, R*R, 3)."""
    batch = cam2world.shape[0]
    device = cam2world.device
    centres = (torch.arange(resolution, device=device, dtype=torch.float32) + 0.5) / resolution
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    intrinsics = intrinsics.to(device).expand(batch, 3, 3)
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    sk = intrinsics[:, 0, 1, None]
    u = u.reshape(1, -1)
    v = v.reshape(1, -1)
    x_cam = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y_cam = (v - cy) / fy
    directions_cam = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1)
    directions = directions_cam @ cam2world[:, :3, :3].transpose(1, 2)
    directions = torch.nn.functional.normalize(directions, dim=-1)
    origins = cam2world[:, None, :3, 3].expand_as(directions)
    return origins, directions
