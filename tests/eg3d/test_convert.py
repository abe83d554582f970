"""An EG3D generator pickled with the released layout and names, imported onto our classes: the
same random weights give the same outputs as loading them straight into TriPlaneGenerator."""

import pytest
import torch

from bridge.eg3d.convert import import_checkpoint
from bridge.eg3d.synthetic import TINY, marker_source, random_generator, write_checkpoint
from bridge.errors import WeightsError
from bridge.field.weights import load_generator


def test_imported_generator_matches_the_same_weights_loaded_directly(tmp_path):
    marker = tmp_path / "ran.txt"
    original = random_generator(TINY)
    path = write_checkpoint(original, tmp_path / "eg3d.pkl", marker_source(marker))
    imported, metadata = load_generator(import_checkpoint(path, tmp_path / "imported"))
    assert not marker.exists()
    assert imported.config == TINY
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


def test_wrong_or_missing_tensors_are_named(tmp_path):
    def damage(flat):
        flat["backbone.synthesis.b8.conv1.weight"] = torch.randn(5, 5, 3, 3)
        del flat["backbone.synthesis.b4.const"]

    path = write_checkpoint(random_generator(TINY), tmp_path / "bad.pkl", edit=damage)
    with pytest.raises(WeightsError) as error:
        import_checkpoint(path, tmp_path / "out")
    message = str(error.value)
    assert "missing: synthesis.b4.const" in message and "wrong shape: synthesis.b8.conv1.weight" in message
    assert not (tmp_path / "out" / "generator.safetensors").exists()


def test_import_command_writes_the_generator_and_says_what_it_left_out(tmp_path, capsys):
    from bridge.cli import main

    path = write_checkpoint(random_generator(TINY), tmp_path / "eg3d.pkl")
    assert main(["import-eg3d", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "generator.safetensors" in out and "planes 8 x 16^2" in out and "left out 5 tensors" in out
    assert main(["import-eg3d", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "out")]) == 2
    assert "No checkpoint at" in capsys.readouterr().err
