"""Reading EG3D checkpoints safely, on pickles built here with the released files' structure:
torch_utils.persistence records (class name, module source, state), EasyDicts, OrderedDicts of
Parameters and buffers, and the converted .pth layout."""

import os
import pickle

import pytest
import torch

from bridge.eg3d.checkpoint import (
    PersistentRecord,
    UnsafeCheckpoint,
    flat_state,
    generator_record,
    read_checkpoint,
)
from bridge.errors import WeightsError
from tests.eg3d.conftest import persistent


def snapshot(modules, marker, seed=0):
    torch.manual_seed(seed)
    fc0 = persistent(modules, "FullyConnectedLayer", marker,
                     parameters=[("weight", torch.nn.Parameter(torch.randn(8, 4))), ("bias", torch.nn.Parameter(torch.zeros(8)))])
    mapping = persistent(modules, "MappingNetwork", marker, buffers=[("w_avg", torch.randn(8))], children=[("fc0", fc0)])
    conv = persistent(modules, "SynthesisLayer", marker, parameters=[("weight", torch.nn.Parameter(torch.randn(4, 4, 3, 3)))],
                      buffers=[("resample_filter", torch.ones(4, 4) / 16), ("noise_const", torch.randn(4, 4).half())])
    block = persistent(modules, "SynthesisBlock", marker, children=[("conv0", conv)])
    synthesis = persistent(modules, "SynthesisNetwork", marker, children=[("b4", block)])
    kwargs = modules.EasyDict(z_dim=4, w_dim=8, mapping_kwargs=modules.EasyDict(num_layers=2), img_resolution=512)
    generator = persistent(modules, "TriPlaneGenerator", marker, children=[("backbone", persistent(
        modules, "StyleGAN2Backbone", marker, children=[("mapping", mapping), ("synthesis", synthesis)]))],
        _init_kwargs=kwargs, rendering_kwargs={"box_warp": 1, "depth_resolution": 48})
    return {"G": generator, "G_ema": generator, "D": None, "training_set_kwargs": modules.EasyDict(resolution=512)}


def test_a_snapshot_is_read_without_running_its_module_source(eg3d_modules, tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps(snapshot(eg3d_modules, marker)))

    data = read_checkpoint(path)
    assert not marker.exists(), "the module source inside the pickle was executed"
    record = generator_record(data, path)
    assert isinstance(record, PersistentRecord) and record.class_name == "TriPlaneGenerator"
    assert record.init_kwargs["w_dim"] == 8 and record.init_kwargs["mapping_kwargs"]["num_layers"] == 2
    assert record.state["rendering_kwargs"]["depth_resolution"] == 48
    assert len(record.module_src_sha256) == 64

    tensors = flat_state(record)
    assert sorted(tensors) == [
        "backbone.mapping.fc0.bias", "backbone.mapping.fc0.weight", "backbone.mapping.w_avg",
        "backbone.synthesis.b4.conv0.noise_const", "backbone.synthesis.b4.conv0.resample_filter",
        "backbone.synthesis.b4.conv0.weight",
    ]
    torch.manual_seed(0)
    assert torch.equal(tensors["backbone.mapping.fc0.weight"], torch.randn(8, 4)), "tensors come back bit for bit"
    assert tensors["backbone.synthesis.b4.conv0.noise_const"].dtype == torch.float16


@pytest.mark.parametrize("call", [(os.system, "touch {marker}"), (eval, "open({marker!r}, 'w').write('ran')"),
                                  (exec, "open({marker!r}, 'w').write('ran')")])
def test_a_pickle_that_calls_anything_else_is_refused_and_nothing_runs(tmp_path, call):
    function, argument = call
    marker = tmp_path / "ran.txt"

    class Planted:
        def __reduce__(self):
            return function, (argument.format(marker=str(marker)),)

    path = tmp_path / "planted.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Planted()}))
    with pytest.raises(UnsafeCheckpoint, match="refused") as refused:
        read_checkpoint(path)
    assert not marker.exists()
    assert "\n" not in str(refused.value)


def test_the_converted_pth_layout_reads_with_the_same_rules(eg3d_modules, tmp_path):
    state = {"backbone.mapping.fc0.weight": torch.randn(8, 4), "decoder.net.0.weight": torch.randn(64, 32)}
    converted = {"G_init_args": [], "G_init_kwargs": eg3d_modules.EasyDict(z_dim=4, w_dim=8), "G": state,
                 "G_neural_rendering_resolution": 128, "G_renderinig_kwargs": {"box_warp": 1}}
    path = tmp_path / "ffhq.pth"
    torch.save(converted, path)
    data = read_checkpoint(path)
    record = generator_record(data, path)
    assert data["G_init_kwargs"]["w_dim"] == 8 and data["G_neural_rendering_resolution"] == 128
    assert {k: v.shape for k, v in flat_state(record).items()} == {k: v.shape for k, v in state.items()}

    marker = tmp_path / "ran.txt"

    class Planted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"G": {}, "G_init_kwargs": Planted()}, tmp_path / "planted.pth")
    with pytest.raises(UnsafeCheckpoint):
        read_checkpoint(tmp_path / "planted.pth")
    assert not marker.exists()


def test_missing_damaged_and_foreign_files_get_one_sentence(tmp_path):
    with pytest.raises(WeightsError, match="No checkpoint at"):
        read_checkpoint(tmp_path / "nothing.pkl")
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps({"G_ema": [1, 2, 3]})[:-5])
    with pytest.raises(WeightsError, match="damaged"):
        read_checkpoint(tmp_path / "cut.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(WeightsError, match="not the dict"):
        read_checkpoint(tmp_path / "list.pkl")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"model": 1}))
    with pytest.raises(WeightsError, match="has no generator"):
        generator_record(read_checkpoint(tmp_path / "other.pkl"), "other.pkl")


def test_inspect_command_lists_the_generator_without_running_it(eg3d_modules, tmp_path, capsys):
    from bridge.cli import main

    marker = tmp_path / "ran.txt"
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(pickle.dumps(snapshot(eg3d_modules, marker)))
    assert main(["inspect-eg3d", str(path), "--tensors"]) == 0
    out = capsys.readouterr().out
    assert "TriPlaneGenerator" in out and "not run" in out and '"w_dim": 8' in out
    assert "backbone.mapping.fc0.weight" in out and "(8, 4)" in out
    assert not marker.exists()

    planted = tmp_path / "planted.pkl"

    class Planted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    planted.write_bytes(pickle.dumps({"G_ema": Planted()}))
    assert main(["inspect-eg3d", str(planted)]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()
