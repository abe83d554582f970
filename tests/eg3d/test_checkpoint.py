"""Reading EG3D checkpoints safely, on pickles built here with the released files' structure:
torch_utils.persistence records (class name, module source, state), EasyDicts, OrderedDicts of
Parameters and buffers, and the converted .pth layout."""

import contextlib
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from bridge.eg3d.checkpoint import PersistentRecord, UnsafeCheckpoint, flat_state, generator_record, read_checkpoint
from bridge.eg3d.synthetic import EasyDict, eg3d_modules, marker_source, record, write_planted
from bridge.errors import WeightsError


def snapshot(marker, seed=0) -> bytes:
    torch.manual_seed(seed)
    source = marker_source(marker)
    with eg3d_modules():
        fc0 = record(
            "FullyConnectedLayer",
            source,
            parameters=[("weight", torch.nn.Parameter(torch.randn(8, 4))), ("bias", torch.nn.Parameter(torch.zeros(8)))],
        )
        mapping = record("MappingNetwork", source, buffers=[("w_avg", torch.randn(8))], children=[("fc0", fc0)])
        conv = record(
            "SynthesisLayer",
            source,
            parameters=[("weight", torch.nn.Parameter(torch.randn(4, 4, 3, 3)))],
            buffers=[("resample_filter", torch.ones(4, 4) / 16), ("noise_const", torch.randn(4, 4).half())],
        )
        synthesis = record("SynthesisNetwork", source, children=[("b4", record("SynthesisBlock", source, children=[("conv0", conv)]))])
        kwargs = EasyDict(z_dim=4, w_dim=8, mapping_kwargs=EasyDict(num_layers=2), img_resolution=512)
        backbone = record("StyleGAN2Backbone", source, children=[("mapping", mapping), ("synthesis", synthesis)])
        generator = record(
            "TriPlaneGenerator",
            source,
            children=[("backbone", backbone)],
            _init_kwargs=kwargs,
            rendering_kwargs={"box_warp": 1, "depth_resolution": 48},
        )
        return pickle.dumps({"G": generator, "G_ema": generator, "D": None, "training_set_kwargs": EasyDict(resolution=512)})


def test_a_snapshot_is_read_without_running_its_module_source(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(snapshot(marker))

    data = read_checkpoint(path)
    assert not marker.exists(), "the module source inside the pickle was executed"
    generator = generator_record(data, path)
    assert isinstance(generator, PersistentRecord) and generator.class_name == "TriPlaneGenerator"
    assert generator.init_kwargs["w_dim"] == 8 and generator.init_kwargs["mapping_kwargs"]["num_layers"] == 2
    assert generator.state["rendering_kwargs"]["depth_resolution"] == 48
    assert len(generator.module_src_sha256) == 64

    tensors = flat_state(generator)
    assert sorted(tensors) == [
        "backbone.mapping.fc0.bias",
        "backbone.mapping.fc0.weight",
        "backbone.mapping.w_avg",
        "backbone.synthesis.b4.conv0.noise_const",
        "backbone.synthesis.b4.conv0.resample_filter",
        "backbone.synthesis.b4.conv0.weight",
    ]
    torch.manual_seed(0)
    assert torch.equal(tensors["backbone.mapping.fc0.weight"], torch.randn(8, 4)), "tensors come back bit for bit"
    assert tensors["backbone.synthesis.b4.conv0.noise_const"].dtype == torch.float16


def test_trusting_the_same_file_would_run_its_module_source(tmp_path):
    """The planted source is live: plain pickle.load (with EG3D's modules present) runs it."""
    marker = tmp_path / "ran.txt"
    data = snapshot(marker)
    with eg3d_modules(), pytest.raises(RuntimeError, match="trusting"):
        pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize("command", ["touch {marker}", "echo ran > {marker}"])
def test_a_pickle_that_calls_os_system_is_refused_and_nothing_runs(tmp_path, command):
    marker = tmp_path / "ran.txt"
    path = write_planted(tmp_path / "planted.pkl", command.format(marker=marker))
    with pytest.raises(UnsafeCheckpoint, match="refused") as refused:
        read_checkpoint(path)
    assert not marker.exists() and "\n" not in str(refused.value)


@pytest.mark.parametrize("function", [eval, exec])
def test_eval_and_exec_are_refused(tmp_path, function):
    marker = tmp_path / "ran.txt"

    class Planted:
        def __reduce__(self):
            return function, (f"open({str(marker)!r}, 'w').write('ran')",)

    (tmp_path / "planted.pkl").write_bytes(pickle.dumps({"G_ema": Planted()}))
    with pytest.raises(UnsafeCheckpoint, match="builtins"):
        read_checkpoint(tmp_path / "planted.pkl")
    assert not marker.exists()


def test_the_converted_pth_layout_reads_with_the_same_rules(tmp_path):
    state = {"backbone.mapping.fc0.weight": torch.randn(8, 4), "decoder.net.0.weight": torch.randn(64, 32)}
    path = tmp_path / "ffhq.pth"
    with eg3d_modules():
        torch.save(
            {
                "G_init_args": [],
                "G_init_kwargs": EasyDict(z_dim=4, w_dim=8),
                "G": state,
                "G_neural_rendering_resolution": 128,
                "G_renderinig_kwargs": {"box_warp": 1},
            },
            path,
        )
    data = read_checkpoint(path)
    assert data["G_init_kwargs"]["w_dim"] == 8 and data["G_neural_rendering_resolution"] == 128
    assert {k: v.shape for k, v in flat_state(generator_record(data, path)).items()} == {k: v.shape for k, v in state.items()}

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
    (tmp_path / "notes.pkl").write_text("not a checkpoint at all")  # was "KeyError: 110 ... may be damaged"
    with pytest.raises(WeightsError, match="is not a pickle"):
        read_checkpoint(tmp_path / "notes.pkl")
    import numpy as np

    np.savez(tmp_path / "grid.npz", density=np.zeros(3))  # a zip, not torch.save's: was "RuntimeError: [enforce fail ..."
    with pytest.raises(WeightsError, match="not one torch.save wrote"):
        read_checkpoint(tmp_path / "grid.npz")


def test_inspect_command_lists_the_generator_without_running_it(tmp_path, capsys):
    from bridge.cli import main

    marker = tmp_path / "ran.txt"
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(snapshot(marker))
    assert main(["inspect-eg3d", str(path), "--tensors"]) == 0
    out = capsys.readouterr().out
    assert "TriPlaneGenerator" in out and "not run" in out and '"w_dim": 8' in out
    assert "backbone.mapping.fc0.weight" in out and "(8, 4)" in out
    assert not marker.exists()
    assert main(["inspect-eg3d", str(write_planted(tmp_path / "planted.pkl", f"touch {marker}"))]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()


@contextlib.contextmanager
def classes_defined_here(marker):
    """Real nn.Module classes under EG3D's module names (ImportanceRenderer, MipRayMarcher2,
    RaySampler, OSGDecoder) in sys.modules, whose __setstate__ writes `marker` when it runs."""

    class Live(torch.nn.Module):
        def __setstate__(self, state):
            marker.write_text("ran")
            super().__setstate__(state)

    names = {
        "ImportanceRenderer": "training.volumetric_rendering.renderer",
        "RaySampler": "training.volumetric_rendering.ray_sampler",
        "MipRayMarcher2": "training.volumetric_rendering.ray_marcher",
        "OSGDecoder": "training.triplane",
    }
    classes = {name: type(name, (Live,), {"__module__": module, "__qualname__": name}) for name, module in names.items()}
    modules = {}
    for name, module in names.items():
        parts = module.split(".")
        for end in range(1, len(parts) + 1):
            modules.setdefault(".".join(parts[:end]), types.ModuleType(".".join(parts[:end])))
        setattr(modules[module], name, classes[name])
    with eg3d_modules():
        saved = {name: sys.modules.get(name) for name in modules}
        sys.modules.update(modules)
        try:
            yield classes
        finally:
            for name, module in saved.items():
                sys.modules[name] = module


def test_plain_network_classes_and_numpy_gains_are_read_as_data(tmp_path):
    """A snapshot pickled with plain pickle from those classes, with numpy float64/float32 gains
    as EG3D's layers keep them: read as inert data, nothing of the classes runs."""
    marker = tmp_path / "ran.txt"
    with classes_defined_here(marker) as classes:
        renderer = classes["ImportanceRenderer"]()
        renderer.ray_marcher = classes["MipRayMarcher2"]()
        renderer.plane_axes = torch.eye(3).expand(3, 3, 3)
        decoder = classes["OSGDecoder"]()
        decoder.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Softplus())
        decoder.hidden_dim, decoder.weight_gain = 64, np.float64(0.25)
        generator = record(
            "TriPlaneGenerator",
            children=[("renderer", renderer), ("ray_sampler", classes["RaySampler"]()), ("decoder", decoder)],
            lr_gain=np.float32(0.5),
        )
        data = pickle.dumps({"G_ema": generator, "D": None, "augment_pipe": None})
    path = tmp_path / "plain.pkl"
    path.write_bytes(data)

    generator = generator_record(read_checkpoint(path), path)
    assert not marker.exists(), "a class's code ran while loading"
    renderer, decoder = generator.state["_modules"]["renderer"], generator.state["_modules"]["decoder"]
    assert repr(renderer) == "<training.volumetric_rendering.renderer.ImportanceRenderer (not run)>"
    assert repr(renderer._modules["ray_marcher"]) == "<training.volumetric_rendering.ray_marcher.MipRayMarcher2 (not run)>"
    assert decoder.weight_gain == 0.25 and type(decoder.weight_gain) is float, "numpy scalars come back as numbers"
    assert generator.state["lr_gain"] == 0.5
    assert sorted(flat_state(generator)) == ["decoder.net.0.bias", "decoder.net.0.weight"]

    with classes_defined_here(marker), pytest.raises(RuntimeError, match="trusting"):
        pickle.loads(data)
    assert marker.exists(), "trusting the same file runs the classes' code"
