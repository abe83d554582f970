"""Hostile and damaged checkpoints (benchmarks/hostile_checkpoint.py): each is one sentence from
`inspect-eg3d` and `import-eg3d` (exit 2, no traceback), nothing in it runs, and nothing the
file declares is allocated before it is checked."""

import pytest

from bridge.cli import main
from benchmarks.hostile_checkpoint import hostile_checkpoint_files

READ_ONLY_CASES = ("module_source_runs_if_trusted", "z_dim_", "w_dim_", "channel_max_", "conv_clamp_", "box_warp_",
                   "depth_resolution_", "camera_pivot_", "mapping_layers_", "no_torgb", "no_mapping", "tensor_")
"""Files that read as data (inspect lists them) but are no generator the bridge can build."""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return folder, dict(hostile_checkpoint_files(folder, bomb_bytes=64 << 20))


def test_there_are_cases_of_every_group(hostile):
    _, cases = hostile
    assert len(cases) >= 45
    for group in ("nested", "cyclic", "laughs", "200_gib", "os_system", "z_dim_30000", "pth_deflate_bomb"):
        assert any(group in name for name in cases), group


def test_every_hostile_checkpoint_is_one_sentence(hostile, capsys):
    folder, cases = hostile
    for name, path in cases.items():
        assert main(["import-eg3d", str(path), "--out", str(folder / "out" / name)]) == 2, name
        message = capsys.readouterr().err.strip()
        assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, (name, message)
        assert not (folder / "out" / name / "generator.safetensors").exists(), name
        inspected, message = main(["inspect-eg3d", str(path)]), capsys.readouterr().err
        assert inspected == (0 if name.startswith(READ_ONLY_CASES) else 2), (name, message)
    assert not list(folder.glob("*ran*")), "a planted payload ran"


def test_sizes_are_checked_before_the_generator_is_built(hostile):
    """w_dim 4000 passes the size bounds; the meta-device build finds the tensors do not fit."""
    from bridge.eg3d.checkpoint import generator_record, read_checkpoint
    from bridge.eg3d.convert import convert
    from bridge.errors import WeightsError

    _, cases = hostile
    with pytest.raises(WeightsError, match="wrong shape: mapping"):
        convert(generator_record(read_checkpoint(cases["w_dim_4000_mismatched"])))
    with pytest.raises(WeightsError, match="z_dim is '30000', not a whole number from 0 to 4096"):
        convert(generator_record(read_checkpoint(cases["z_dim_30000"])))
