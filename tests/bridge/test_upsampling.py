"""EG3D's FIR up-sampling (bridge/field/layers.py), checked against closed forms: the filter's
border behaviour, its agreement with bilinear inside, and the up-sampling conv being a true
convolution (kernel flipped) as EG3D's trained weights expect."""

import torch
import torch.nn.functional as F

from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.layers import fir_up_conv, fir_upsample2x, upsample2x


def test_fir_upsampling_of_a_constant_sees_zeros_beyond_the_border():
    up = fir_upsample2x(torch.full((1, 1, 5, 5), 2.0))
    assert up.shape == (1, 1, 10, 10)
    assert torch.allclose(up[0, 0, 1:-1, 1:-1], torch.tensor(2.0))
    assert torch.allclose(up[0, 0, 0, 1:-1], torch.tensor(1.5))  # 3/4 of the value on an edge
    assert torch.allclose(up[0, 0, 0, 0], torch.tensor(1.125))  # (3/4)^2 in a corner


def test_fir_upsampling_equals_bilinear_away_from_the_border():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(fir_upsample2x(x)[..., 1:-1, 1:-1], upsample2x(x)[..., 1:-1, 1:-1], atol=1e-6)


def test_up_conv_is_a_convolution_of_the_up_sampled_input():
    torch.manual_seed(1)
    x, weight = torch.randn(1, 4, 6, 6), torch.randn(5, 4, 3, 3)
    fused = fir_up_conv(x, weight)
    separate = F.conv2d(fir_upsample2x(x), weight.flip([2, 3]), padding=1)
    assert fused.shape == (1, 5, 12, 12)
    assert torch.allclose(fused[..., 2:-2, 2:-2], separate[..., 2:-2, 2:-2], atol=1e-5)
    correlation = F.conv2d(fir_upsample2x(x), weight, padding=1)
    assert not torch.allclose(fused[..., 2:-2, 2:-2], correlation[..., 2:-2, 2:-2], atol=1e-3)


def test_generators_with_either_upsampling_make_planes_of_the_same_shape():
    small = dict(z_dim=8, c_dim=4, w_dim=16, plane_resolution=16, plane_channels=4, channel_base=128, channel_max=16)
    torch.manual_seed(2)
    bilinear = TriPlaneGenerator(GeneratorConfig(**small))
    fir = TriPlaneGenerator(GeneratorConfig(**small, upsampling="eg3d_fir", conv_clamp=1.0))
    fir.load_state_dict(bilinear.state_dict())
    ws = bilinear.map(torch.randn(2, 8), torch.randn(2, 4))
    with torch.no_grad():
        a, b = bilinear.planes(ws), fir.planes(ws)
    assert a.shape == b.shape == (2, 3, 4, 16, 16)
    assert not torch.allclose(a, b)
