"""An EG3D generator pickled with the released layout and names, imported onto our classes: the
same random weights give the same outputs as loading them straight into TriPlaneGenerator."""

import pickle

import pytest
import torch

from bridge.eg3d.convert import import_checkpoint
from bridge.errors import WeightsError
from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.weights import load_generator
from tests.eg3d.conftest import nested_records, persistent

SMALL = GeneratorConfig(z_dim=16, c_dim=25, w_dim=32, plane_resolution=16, plane_channels=8, channel_base=256,
                        channel_max=32, decoder_hidden=16, decoder_features=8)


def eg3d_name(ours: str) -> str:
    for prefix, replacement in (("mapping.", "backbone.mapping."), ("synthesis.", "backbone.synthesis."),
                                ("decoder.fc0.", "decoder.net.0."), ("decoder.fc1.", "decoder.net.2.")):
        if ours.startswith(prefix):
            return replacement + ours[len(prefix):]
    raise AssertionError(ours)


def random_generator(seed=0) -> TriPlaneGenerator:
    torch.manual_seed(seed)
    generator = TriPlaneGenerator(SMALL)
    with torch.no_grad():
        for tensor in generator.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 0.5)
    return generator.eval()


def eg3d_pickle(modules, generator, marker, path, edit=None):
    flat = {eg3d_name(n): t.clone() for n, t in generator.state_dict().items()}
    flat["backbone.synthesis.b8.resample_filter"] = torch.ones(4, 4) / 16
    flat["backbone.synthesis.b8.conv0.resample_filter"] = torch.ones(4, 4) / 16
    flat["superresolution.block0.conv0.weight"] = torch.randn(8, 8, 3, 3)
    if edit:
        edit(flat)
    records = nested_records(modules, flat, marker, containers={"decoder.net"})
    rendering = {"depth_resolution": 12, "depth_resolution_importance": 12, "ray_start": 2.25, "ray_end": 3.3,
                 "box_warp": 1, "white_back": False, "decoder_lr_mul": 1.0, "superresolution_module": "sr.Module"}
    kwargs = modules.EasyDict(z_dim=16, c_dim=25, w_dim=32, img_resolution=64, img_channels=3, channel_base=256,
                              channel_max=32, mapping_kwargs=modules.EasyDict(num_layers=2), rendering_kwargs=rendering)
    children = [(name, records[name]) for name in ("backbone", "decoder", "superresolution")]
    generator_record = persistent(modules, "TriPlaneGenerator", marker, children=children, _init_kwargs=kwargs,
                                  rendering_kwargs=rendering)
    path.write_bytes(pickle.dumps({"G": generator_record, "G_ema": generator_record, "D": None}))
    return path


def test_imported_generator_matches_the_same_weights_loaded_directly(eg3d_modules, tmp_path):
    marker = tmp_path / "ran.txt"
    original = random_generator()
    path = eg3d_pickle(eg3d_modules, original, marker, tmp_path / "eg3d.pkl")
    weights = import_checkpoint(path, tmp_path / "imported")
    imported, metadata = load_generator(weights)
    assert not marker.exists()
    assert imported.config.plane_resolution == 16 and imported.config.plane_channels == 8
    assert imported.config.render.depth_samples == 12
    assert metadata["converted_from"] == "EG3D" and "superresolution.block0.conv0.weight" in metadata["skipped_tensors"]

    torch.manual_seed(1)
    z, c = torch.randn(2, 16), torch.randn(2, 25)
    points = torch.rand(1, 500, 3) - 0.5
    with torch.no_grad():
        ws = original.map(z, c)
        assert torch.equal(imported.map(z, c), ws)
        assert torch.equal(imported.planes(ws), original.planes(ws))
        theirs, ours = original.field(ws[:1])(points), imported.field(ws[:1])(points)
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs)


def test_wrong_or_missing_tensors_are_named(eg3d_modules, tmp_path):
    original = random_generator()

    def wrong_shape(flat):
        flat["backbone.synthesis.b8.conv1.weight"] = torch.randn(5, 5, 3, 3)
        del flat["backbone.synthesis.b4.const"]

    path = eg3d_pickle(eg3d_modules, original, tmp_path / "ran.txt", tmp_path / "bad.pkl", edit=wrong_shape)
    with pytest.raises(WeightsError) as error:
        import_checkpoint(path, tmp_path / "out")
    message = str(error.value)
    assert "missing: synthesis.b4.const" in message and "wrong shape: synthesis.b8.conv1.weight" in message
    assert not (tmp_path / "out" / "generator.safetensors").exists()


def test_import_command_writes_the_generator_and_says_what_it_left_out(eg3d_modules, tmp_path, capsys):
    from bridge.cli import main

    path = eg3d_pickle(eg3d_modules, random_generator(), tmp_path / "ran.txt", tmp_path / "eg3d.pkl")
    assert main(["import-eg3d", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "generator.safetensors" in out and "planes 8 x 16^2" in out and "left out 3 tensors" in out
    assert main(["import-eg3d", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "out")]) == 2
    assert "No checkpoint at" in capsys.readouterr().err
