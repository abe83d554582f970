"""An EG3D generator pickled with the released layout and names, imported onto our classes: the
same random weights give the same outputs as loading them straight into TriPlaneGenerator."""

import dataclasses

import pytest
import torch

from bridge.eg3d.checkpoint import generator_record, read_checkpoint
from bridge.eg3d.convert import convert, import_checkpoint
from bridge.eg3d.synthetic import TINY, marker_source, random_generator, write_checkpoint, write_converted
from bridge.errors import WeightsError
from bridge.field.weights import load_generator


def max_difference(original, imported) -> float:
    """The largest difference of two generators over ws, planes, sigma and features at points, and
    the raw and super-resolved pictures of one view (EG3D's way: neural render, then 8X/2X network)."""
    from bridge.eg3d.heads import EG3DHeads

    torch.manual_seed(1)
    z, c = torch.randn(2, 16), torch.randn(2, 25)
    points = torch.rand(1, 500, 3) - 0.5
    theirs, ours = EG3DHeads(original, {}), EG3DHeads(imported, {})
    with torch.no_grad():
        ws = original.map(z, c)
        errors = [(imported.map(z, c) - ws).abs().max(), (imported.planes(ws) - original.planes(ws)).abs().max()]
        at_points = original.field(ws[:1])(points), imported.field(ws[:1])(points)
        errors += [(at_points[0][k] - at_points[1][k]).abs().max() for k in at_points[0]]
        for channels in (("rgb",), ("rgb", "features")):
            a = theirs.view(original.field(ws[:1]), ws[:1], 25.0, channels=channels)
            b = ours.view(imported.field(ws[:1]), ws[:1], 25.0, channels=channels)
            errors += [(a[k] - b[k]).abs().max() for k in a]
    return float(max(errors))


@pytest.mark.parametrize("discriminator", [True, False], ids=["with D", "without D"])
def test_a_training_loop_snapshot_imports_as_the_source_generator(tmp_path, discriminator):
    marker = tmp_path / "ran.txt"
    original = random_generator(TINY)
    path = write_checkpoint(original, tmp_path / "network-snapshot-000400.pkl", marker_source(marker), discriminator=discriminator)
    imported, metadata = load_generator(import_checkpoint(path, tmp_path / "imported"))
    assert not marker.exists()
    assert imported.config == TINY
    assert metadata["converted_from"] == "EG3D"
    assert [note.split(":")[0] for note in metadata["notes"]] == ["left out dataset_label_std"]
    assert all(n.endswith(".resample_filter") or n == "dataset_label_std" for n in metadata["skipped_tensors"])
    assert max_difference(original, imported) <= 1e-4


def test_the_converted_pth_imports_as_the_source_generator(tmp_path):
    original = random_generator(TINY)
    imported, metadata = load_generator(import_checkpoint(write_converted(original, tmp_path / "ffhq.pth"), tmp_path / "out"))
    assert imported.config == TINY and "dataset_label_std" in metadata["skipped_tensors"]
    assert max_difference(original, imported) <= 1e-4


def test_a_generator_without_super_resolution_imports_without_it(tmp_path):
    plain = dataclasses.replace(TINY, superresolution=None)
    imported, _ = load_generator(import_checkpoint(write_checkpoint(random_generator(plain), tmp_path / "plain.pkl"), tmp_path / "out"))
    assert imported.config == plain and imported.superresolution is None


def test_an_unknown_super_resolution_kind_is_left_out_with_a_note(tmp_path):
    path = write_checkpoint(random_generator(TINY), tmp_path / "eg3d.pkl")
    record = generator_record(read_checkpoint(path))
    record.state["rendering_kwargs"]["superresolution_module"] = "training.superresolution.SuperresolutionHybrid16X"
    imported = convert(record)
    assert imported.generator.superresolution is None
    assert "SuperresolutionHybrid16X" in imported.notes[0] and "superresolution.block0.conv0.weight" in imported.skipped


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
    assert "generator.safetensors" in out and "planes 8 x 16^2" in out and "SuperresolutionHybrid2X" in out
    assert "left out 14 FIR filter buffers" in out
    assert main(["import-eg3d", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "out")]) == 2
    assert "No checkpoint at" in capsys.readouterr().err


def test_a_shapenet_cars_style_checkpoint_keeps_its_camera_and_box_limited_rays(tmp_path):
    from bridge.eg3d.convert import SHAPENET_FOCAL
    from bridge.eg3d.heads import EG3DHeads

    cars = dataclasses.replace(
        TINY,
        conditioning_scale=0.0,
        render=dataclasses.replace(
            TINY.render,
            ray_start=None,
            ray_end=None,
            box_size=1.6,
            background=(1.0, 1.0, 1.0),
            camera_radius=1.7,
            camera_pivot=(0.0, 0.0, 0.0),
            focal=SHAPENET_FOCAL,
        ),
    )
    original = random_generator(cars)
    heads = EG3DHeads.load(import_checkpoint(write_checkpoint(original, tmp_path / "cars.pkl"), tmp_path / "out"))
    assert heads.generator.config == cars
    z, c = torch.randn(2, cars.z_dim), torch.randn(2, cars.c_dim)
    with torch.no_grad():
        assert torch.equal(heads.generator.map(z, c), heads.generator.map(z, torch.zeros_like(c))), "cars ignore the camera label"
        ws, _ = heads.head_ws(1)
        picture = heads.view(heads.generator.field(ws[None]), ws[None], 30.0)["rgb"]
    assert picture.shape == (1, 3, 128, 128) and torch.isfinite(picture).all()


def test_a_seed_is_the_head_eg3d_gen_samples_makes_and_noise_modes_are_eg3ds(tmp_path):
    import numpy as np

    from bridge.eg3d.heads import TRUNCATION_PSI, EG3DHeads
    from bridge.errors import BridgeError

    weights = import_checkpoint(write_checkpoint(random_generator(TINY), tmp_path / "eg3d.pkl"), tmp_path / "out")
    heads = EG3DHeads.load(weights)
    ws, description = heads.head_ws(3)
    z = torch.from_numpy(np.random.RandomState(3).randn(1, TINY.z_dim)).float()  # EG3D's gen_samples.py
    with torch.no_grad():
        expected = heads.generator.map(z, heads.conditioning(1), truncation_psi=TRUNCATION_PSI)[0]
    assert torch.equal(ws, expected) and description["noise_mode"] == "const"
    for seed in (-1, 2**32, 1.5):
        with pytest.raises(BridgeError, match="whole number from 0 to 4294967295"):
            heads.head_ws(seed)

    with torch.no_grad():
        const = [heads.generator.planes(ws[None]) for _ in range(2)]
        assert torch.equal(*const), "const noise: a seed is always the same head"
        noisy = EG3DHeads.load(weights, noise_mode="random").generator
        assert not torch.equal(noisy.planes(ws[None]), noisy.planes(ws[None]))
        quiet = EG3DHeads.load(weights, noise_mode="none").generator
        assert torch.equal(quiet.planes(ws[None]), quiet.planes(ws[None])) and not torch.equal(quiet.planes(ws[None]), const[0])
    with pytest.raises(BridgeError, match="noise modes are const, random, none"):
        EG3DHeads.load(weights, noise_mode="loud")


def test_a_folder_in_the_way_of_the_metadata_leaves_no_half_pair(tmp_path):
    """generator.json being a folder: the .safetensors was moved into place, then the .json refused."""
    path = write_checkpoint(random_generator(TINY), tmp_path / "network-snapshot-000000.pkl")
    (tmp_path / "out" / "generator.json").mkdir(parents=True)
    with pytest.raises(WeightsError, match="give --out a folder you can write to"):
        import_checkpoint(path, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["generator.json"]
