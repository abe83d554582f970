"""LENeRF's add-on modules and the fused field, on a tiny generator."""

import pytest
import torch

from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.lenerf.fusion import ACTIVE_SIGMA, EditedField, PlaneFeatures
from bridge.lenerf.modules import EditModules, ModuleConfig, level_groups

TINY = GeneratorConfig(
    z_dim=4,
    c_dim=0,
    w_dim=16,
    plane_resolution=16,
    plane_channels=4,
    channel_base=64,
    channel_max=16,
    decoder_hidden=8,
    decoder_features=4,
)


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    generator = TriPlaneGenerator(TINY).eval()
    config = ModuleConfig(num_ws=generator.num_ws, w_dim=TINY.w_dim, plane_channels=TINY.plane_channels, deformation=True)
    modules = EditModules(config)
    ws = generator.map(torch.randn(2, 4), None)
    return generator, modules, ws


def _field(generator, modules, ws, **options):
    with torch.no_grad():
        modules.mapper.mappers[0].layers[-1].weight.normal_()  # a mapper that changes something
    ws_target = modules.mapper.target(ws)
    return EditedField(
        generator.decoder,
        PlaneFeatures(generator.planes(ws)),
        PlaneFeatures(generator.planes(ws_target)),
        ws,
        ws_target,
        modules.attention,
        modules.deformation,
        **options,
    )


def test_level_groups_follow_styleclip():
    assert level_groups(14) == [(0, 4), (4, 8), (8, 14)]
    assert level_groups(12) == [(0, 4), (4, 8), (8, 12)]
    assert level_groups(3) == [(0, 3)]


def test_untrained_modules_are_the_identity_edit(setup):
    generator, modules, ws = setup
    assert torch.equal(modules.mapper.target(ws), ws)
    points = torch.rand(2, 50, 3) - 0.5
    assert torch.equal(modules.deformation(points, ws, ws), points)


def test_shapes_and_ranges(setup):
    generator, modules, ws = setup
    points = torch.rand(2, 50, 3) - 0.5
    out = _field(generator, modules, ws)(points)
    assert out["sigma"].shape == (2, 50, 1) and out["rgb"].shape == (2, 50, 3)
    mask = out["mask"].detach()
    assert mask.shape == (2, 50, 1) and 0 <= float(mask.min()) <= float(mask.max()) <= 1
    with torch.no_grad():
        modules.deformation.layers[-1].weight.normal_(std=10.0)
    offsets = modules.deformation.offsets(points, ws, ws)
    assert offsets.abs().max() <= modules.config.max_offset + 1e-6 and offsets.abs().max() > 0


def test_fusion_with_mask_zero_is_the_source_and_one_the_target(setup):
    generator, modules, ws = setup
    points = torch.rand(2, 64, 3) - 0.5
    modules.deformation = None  # m = 0 is the source read at the points themselves
    source = _field(generator, modules, ws, mask_override=0.0)
    target = _field(generator, modules, ws, mask_override=1.0)
    with torch.no_grad():
        assert torch.equal(source(points)["sigma"], source.source_field(points)["sigma"])
        assert torch.equal(source(points)["rgb"], source.source_field(points)["rgb"])
        assert torch.equal(target(points)["rgb"], target.target_field(points)["rgb"])
        assert not torch.allclose(source(points)["rgb"], target(points)["rgb"])


def test_texture_only_keeps_the_source_density(setup):
    generator, modules, ws = setup
    points = torch.rand(2, 64, 3) - 0.5
    field = _field(generator, modules, ws, mask_override=1.0, texture_only=True)
    with torch.no_grad():
        assert torch.equal(field(points)["sigma"], field.source_field(points)["sigma"])
        assert torch.equal(field(points)["rgb"], field.target_field(points)["rgb"])
        assert torch.equal(field.mask_field(points)["sigma"], field.source_field(points)["sigma"])


def test_the_fused_decoding_reuses_the_source_where_the_attention_did_not_run(setup):
    """Points in empty space get m = 0 without the attention network; their outputs are the
    source's decoding, which is what decoding the fused features everywhere gives."""
    generator, modules, ws = setup
    points = torch.rand(2, 400, 3) - 0.5
    field = _field(generator, modules, ws)
    with torch.no_grad():  # the untrained decoder's density is shifted so that half the points are empty
        median = field.source_field(points)["sigma"].median()
        generator.decoder.fc1.bias[0] -= (median - ACTIVE_SIGMA) / generator.decoder.fc1.bias_gain
        blend = field._blend(points)
        active = torch.zeros(2 * 400, dtype=torch.bool).index_fill(0, blend["rows"], True).reshape(2, 400)
        assert active.any() and not active.all()
        everywhere = generator.decoder.decode(blend["fused"])
        out = field(points)
    for name in ("sigma", "features", "rgb"):
        assert torch.allclose(out[name], everywhere[name], atol=1e-6), name
    inactive = ~active
    assert torch.equal(out["rgb"][inactive], blend["decoded_source"]["rgb"][inactive])
    assert torch.allclose(generator.decoder.sigma(blend["fused"]), everywhere["sigma"], atol=1e-5)
