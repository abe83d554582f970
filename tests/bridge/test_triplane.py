import torch

from bridge.field.triplane import PLANE_AXES, sample_planes


def _coordinate_planes(resolution: int) -> torch.Tensor:
    """Planes whose channel 0 holds the texel's u coordinate and channel 1 its v coordinate."""
    centres = (torch.arange(resolution) + 0.5) / resolution - 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    plane = torch.stack([u, v])
    return plane.expand(1, 3, 2, resolution, resolution).clone()


def test_planes_are_xy_xz_zx_like_eg3d():
    assert PLANE_AXES == ((0, 1), (0, 2), (2, 0))
    planes = _coordinate_planes(32)
    point = torch.tensor([[[0.11, -0.23, 0.31]]])
    features = sample_planes(planes, point)[0, :, 0]
    x, y, z = point[0, 0]
    expected = torch.tensor([[x, y], [x, z], [z, x]])
    assert torch.allclose(features, expected, atol=1e-5)


def test_box_size_scales_coordinates_and_outside_is_zero():
    planes = _coordinate_planes(16)
    point = torch.tensor([[[0.4, 0.2, -0.2]]])
    scaled = sample_planes(planes, point, box_size=2.0)[0, 0, 0]
    assert torch.allclose(scaled, torch.tensor([0.2, 0.1]), atol=1e-5)
    far = sample_planes(planes + 1.0, torch.tensor([[[3.0, 3.0, 3.0]]]))
    assert torch.count_nonzero(far) == 0
