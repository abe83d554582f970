import json

import pytest
import torch

from bridge.errors import WeightsError
from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.renderer import RenderConfig
from bridge.field.weights import load_generator, metadata_path, save_generator

TINY = GeneratorConfig(
    z_dim=4,
    c_dim=3,
    w_dim=16,
    plane_resolution=8,
    plane_channels=4,
    channel_base=64,
    channel_max=16,
    decoder_hidden=8,
    decoder_features=4,
    render=RenderConfig(background=(1.0, 1.0, 1.0)),
)


def _outputs(generator: TriPlaneGenerator) -> torch.Tensor:
    torch.manual_seed(1)
    ws = generator.map(torch.randn(2, 4), torch.randn(2, 3))
    return generator.field(ws).query(torch.rand(50, 3) - 0.5)["sigma"]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    generator = TriPlaneGenerator(TINY)
    path = tmp_path / "tiny.safetensors"
    save_generator(generator, path, {"metrics": {"psnr_db": 1.0}})
    return generator, path


def test_round_trip_keeps_outputs_config_and_metadata(saved):
    generator, path = saved
    loaded, metadata = load_generator(path)
    assert loaded.config == TINY
    assert metadata["metrics"] == {"psnr_db": 1.0}
    assert torch.equal(_outputs(generator), _outputs(loaded))


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "nothing.safetensors"
    with pytest.raises(WeightsError, match=r"nothing\.safetensors does not exist; do this"):
        load_generator(missing, hint="do this")


def test_truncated_file_is_reported_not_raised_raw(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="checksum"):
        load_generator(path)
    meta = json.loads(metadata_path(path).read_text())
    del meta["sha256"]
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="cannot be read"):
        load_generator(path)


def test_corrupt_metadata_is_one_sentence(saved):
    _, path = saved
    metadata_path(path).write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_generator(path)


def test_weights_that_do_not_fit_the_config_are_named(saved, tmp_path):
    _, path = saved
    meta = json.loads(metadata_path(path).read_text())
    meta["config"]["plane_channels"] = 5
    metadata_path(path).write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="wrong shape: decoder.fc0.weight"):
        load_generator(path)


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"plane_resolution": "256"}, "plane_resolution must be a whole number"),
        ({"w_dim": -4}, "w_dim must be a whole number"),
        ({"w_dim": True}, "w_dim must be a whole number"),
        ({"mapping_layers": 2.5}, "mapping_layers must be a whole number"),
        ({"w_dim": 30000}, "wrong shape"),
        ({"render": {"depth_samples": 48, "fov": 12}}, "invalid"),
        ({"superresolution": "yes"}, "invalid"),
    ],
)
def test_a_config_of_the_wrong_type_or_size_is_one_sentence_and_allocates_nothing(saved, changes, says):
    """Hand-edited or damaged metadata (the checksum covers the tensors only): a string where a
    size goes was a TypeError traceback, a negative one a RuntimeError, and w_dim 2^20 would have
    allocated w_dim^2 floats per mapping layer before the shapes were compared (30000: 7 GB)."""
    import resource

    _, path = saved
    meta = json.loads(metadata_path(path).read_text())
    meta["config"].update(changes)
    metadata_path(path).write_text(json.dumps(meta))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WeightsError, match=says) as refused:
        load_generator(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib < 512 * 1024, "the process grew by over 512 MB"
    assert "\n" not in str(refused.value) and str(metadata_path(path).name) in str(refused.value) or "wrong shape" in says


def test_a_failed_save_leaves_no_half_pair(tmp_path, monkeypatch):
    """The metadata cannot be written: neither file is left, and an earlier pair stays whole."""
    import pathlib

    generator = TriPlaneGenerator(TINY)
    path = tmp_path / "generator.safetensors"
    save_generator(generator, path)
    before = path.read_bytes(), metadata_path(path).read_text()

    def refuse(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", refuse)
    with pytest.raises(OSError):
        save_generator(TriPlaneGenerator(TINY), path)
    monkeypatch.undo()
    assert (path.read_bytes(), metadata_path(path).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.json", "generator.safetensors"]
    load_generator(path)
