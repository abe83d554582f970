"""Hostile and damaged checkpoints (benchmarks/hostile_checkpoint.py): each is one sentence from
`inspect-eg3d` and `import-eg3d` (exit 2, no traceback), nothing in it runs, and nothing the
file declares is allocated before it is checked."""

import pytest

from benchmarks.hostile_checkpoint import hostile_checkpoint_files
from bridge.cli import main

READ_ONLY_CASES = (
    "module_source_runs_if_trusted",
    "z_dim_",
    "w_dim_",
    "channel_max_",
    "conv_clamp_",
    "box_warp_",
    "depth_resolution_",
    "camera_pivot_",
    "mapping_layers_",
    "no_torgb",
    "no_mapping",
    "tensor_",
)
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


def test_fuzzed_checkpoints_are_read_or_refused_in_one_sentence(tmp_path_factory):
    """Random byte changes, cuts and insertions in a small snapshot: the reader and the converter
    give a generator or a WeightsError, never another exception."""
    import dataclasses

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from bridge.eg3d.checkpoint import generator_record, read_checkpoint
    from bridge.eg3d.convert import convert
    from bridge.eg3d.synthetic import TINY, random_generator, write_checkpoint
    from bridge.errors import WeightsError

    folder = tmp_path_factory.mktemp("fuzz")
    tiny = dataclasses.replace(TINY, plane_resolution=8, superresolution=None)
    valid = write_checkpoint(random_generator(tiny), folder / "valid.pkl", discriminator=False).read_bytes()
    path = folder / "fuzzed.pkl"

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.tuples(
                st.integers(0, len(valid) - 1), st.sampled_from(["flip", "cut", "insert", "zero"]), st.binary(min_size=1, max_size=9)
            ),
            min_size=1,
            max_size=4,
        )
    )
    def read(changes):
        data = bytearray(valid)
        for position, kind, payload in changes:
            position %= max(len(data), 1)
            if kind == "flip":
                data[position] ^= payload[0] or 1
            elif kind == "cut":
                del data[position : position + payload[0]]
            elif kind == "insert":
                data[position:position] = payload
            else:
                data[position : position + len(payload)] = bytes(len(payload))
        path.write_bytes(bytes(data))
        try:
            convert(generator_record(read_checkpoint(path)))
        except WeightsError as error:
            assert "\n" not in str(error) and str(error)

    read()
