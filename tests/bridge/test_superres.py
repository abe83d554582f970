"""EG3D's super-resolution network (bridge/field/superres.py): the released layouts' tensor names
and shapes, and its behaviour checked against closed forms on the small 2X kind."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from bridge.eg3d.synthetic import TINY, random_generator
from bridge.field.generator import GeneratorConfig
from bridge.field.layers import fir_upsample2x
from bridge.field.superres import SuperResolution, SuperResolutionConfig, feature_image


def test_released_layouts_have_eg3d_names_and_shapes():
    ffhq = SuperResolution(SuperResolutionConfig("SuperresolutionHybrid8XDC", conv_clamp=256.0), in_channels=32, w_dim=512)
    shapes = {name: tuple(t.shape) for name, t in ffhq.state_dict().items()}
    assert shapes["block0.conv0.weight"] == (256, 32, 3, 3) and shapes["block0.conv0.affine.weight"] == (32, 512)
    assert shapes["block0.conv1.noise_const"] == (256, 256) and shapes["block1.conv1.noise_const"] == (512, 512)
    assert shapes["block1.conv0.weight"] == (128, 256, 3, 3) and shapes["block1.torgb.weight"] == (3, 128, 1, 1)
    cars = SuperResolution(SuperResolutionConfig("SuperresolutionHybrid2X"), in_channels=32, w_dim=512)
    shapes = {name: tuple(t.shape) for name, t in cars.state_dict().items()}
    assert shapes["block0.conv0.weight"] == (128, 32, 3, 3) and shapes["block0.conv0.noise_const"] == (64, 64)
    assert shapes["block1.conv0.weight"] == (64, 128, 3, 3) and shapes["block1.conv1.noise_const"] == (128, 128)


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown super-resolution kind"):
        SuperResolutionConfig("SuperresolutionHybrid16X")


@pytest.fixture(scope="module")
def network() -> SuperResolution:
    return random_generator(TINY, seed=3).superresolution


def test_without_its_to_rgb_layers_it_only_up_samples_the_raw_rgb(network):
    """The skip path: block0 keeps the resolution, block1 up-samples 2x with EG3D's FIR filter."""
    model = copy.deepcopy(network)
    with torch.no_grad():
        for block in (model.block0, model.block1):
            block.torgb.weight.zero_()
            block.torgb.bias.zero_()
    torch.manual_seed(0)
    features, ws = torch.rand(2, TINY.decoder_features, 64, 64) * 2 - 1, torch.randn(2, 5, TINY.w_dim)
    with torch.no_grad():
        assert torch.allclose(model(features, ws), fir_upsample2x(features[:, :3]), atol=1e-6)
        assert not torch.allclose(network(features, ws), fir_upsample2x(features[:, :3]), atol=1e-3)


def test_only_the_last_w_styles_the_picture(network):
    torch.manual_seed(1)
    features, ws = torch.rand(1, TINY.decoder_features, 64, 64), torch.randn(1, 6, TINY.w_dim)
    other_early = torch.cat([torch.randn(1, 5, TINY.w_dim), ws[:, -1:]], dim=1)
    other_last = torch.cat([ws[:, :-1], torch.randn(1, 1, TINY.w_dim)], dim=1)
    with torch.no_grad():
        picture = network(features, ws)
        assert picture.shape == (1, 3, 128, 128)
        assert torch.equal(network(features, other_early), picture)
        assert not torch.allclose(network(features, other_last), picture, atol=1e-3)


def test_other_input_sizes_are_resized_to_the_kinds_input(network):
    torch.manual_seed(2)
    features, ws = torch.rand(1, TINY.decoder_features, 32, 32), torch.randn(1, 6, TINY.w_dim)
    resized = F.interpolate(features, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        assert torch.equal(network(features, ws), network(resized, ws))


def test_feature_image_is_scaled_to_plus_minus_one_with_eg3ds_white_background():
    rendered = {"features": torch.full((1, 4, 2, 2), 0.25), "opacity": torch.full((1, 1, 2, 2), 0.5)}
    assert torch.allclose(feature_image(rendered, white_back=False), torch.tensor(-0.5))
    assert torch.allclose(feature_image(rendered, white_back=True), torch.tensor(0.5))


def test_generator_configs_with_super_resolution_round_trip():
    assert GeneratorConfig.from_dict(TINY.to_dict()) == TINY
    assert GeneratorConfig.from_dict(dataclasses.replace(TINY, superresolution=None).to_dict()).superresolution is None
