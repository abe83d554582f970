"""Checkpoints as EG3D's training loop writes them, made from one of our generators: what the
tests and the eg3d benchmark import (NVIDIA's weights cannot be downloaded here).

A snapshot (`training/training_loop.py`) is `pickle.dump` of {training_set_kwargs, G, D, G_ema,
augment_pipe} (D and augment_pipe may be None). EG3D pickles each persistent network through
`torch_utils.persistence`: a call of `_reconstruct_persistent_obj(meta)` whose meta holds the class
name, the module's *source code* and the object's state (torch.nn.Module's __dict__: parameters,
buffers, hooks, children, init kwargs, ...). Inside those records sit what is not persistent and
pickles as a plain object of its class: torch.nn's Sequential and Softplus, and EG3D's
ImportanceRenderer (holding a MipRayMarcher2), RaySampler and OSGDecoder. Layer gains computed
with numpy (`lr_multiplier / np.sqrt(in_features)`) are numpy float64 scalars, and the training
loop registers `dataset_label_std` on G before G_ema is copied from it.

Writing such a pickle needs EG3D's globals to exist, so `eg3d_modules()` puts stand-ins into
sys.modules while pickling. The stand-in loader does what EG3D's does, exec the module source, so
a reader that trusted the file would run it: `module_src` can plant a marker that proves whether
it ran. `write_converted` writes the `.pth` layout some projects (3DPE) redistribute.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from bridge.eg3d.convert import eg3d_name
from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.renderer import RenderConfig
from bridge.field.superres import SuperResolutionConfig

BUFFERS = ("noise_const", "w_avg", "resample_filter")
SEQUENTIALS = ("decoder.net",)
"""Module paths EG3D holds in a plain torch.nn.Sequential (with Softplus between the layers)."""
PLAIN_CLASSES = {
    "renderer": ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
    "renderer.ray_marcher": ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"),
    "ray_sampler": ("training.volumetric_rendering.ray_sampler", "RaySampler"),
    "decoder": ("training.triplane", "OSGDecoder"),
}
"""EG3D's networks that are plain nn.Module subclasses, by where they sit in the generator."""


def _plain_class(module: str, name: str) -> type:
    return type(name, (torch.nn.Module,), {"__module__": module, "__qualname__": name})


_PLAIN = {where: _plain_class(*names) for where, names in PLAIN_CLASSES.items()}


def _reconstruct_persistent_obj(meta: dict):
    exec(compile(meta["module_src"], "<eg3d module source>", "exec"), {})  # what EG3D does on load
    raise RuntimeError("an EG3D-style pickle was loaded by trusting it")


class EasyDict(dict):
    """dnnlib.util.EasyDict's stand-in."""


@contextlib.contextmanager
def eg3d_modules() -> Iterator[None]:
    """torch_utils.persistence and dnnlib.util stand-ins in sys.modules while pickling."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    saved = {}
    stand_ins = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }
    for cls in _PLAIN.values():
        parts = cls.__module__.split(".")
        for end in range(1, len(parts) + 1):
            stand_ins.setdefault(".".join(parts[:end]), types.ModuleType(".".join(parts[:end])))
        setattr(stand_ins[cls.__module__], cls.__name__, cls)
    originals = (
        _reconstruct_persistent_obj.__module__,
        _reconstruct_persistent_obj.__qualname__,
        EasyDict.__module__,
        EasyDict.__qualname__,
    )
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    for name, module in stand_ins.items():
        saved[name] = sys.modules.get(name)
        sys.modules[name] = module
    try:
        yield
    finally:
        (_reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__, EasyDict.__module__, EasyDict.__qualname__) = (
            originals
        )
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def module_state(parameters=(), buffers=(), children=(), **extra) -> dict:
    """torch.nn.Module's __dict__ (hooks and all, as this torch writes it) of an eval-mode network."""
    state = vars(torch.nn.Module())
    state.update(
        training=False,
        _parameters=collections.OrderedDict(parameters),
        _buffers=collections.OrderedDict(buffers),
        _modules=collections.OrderedDict(children),
        **extra,
    )
    return state


def plain(where: str, children=(), **attributes) -> torch.nn.Module:
    """EG3D's plain network at `where`, which pickles as an object of its class (by name) and its __dict__."""
    network = _PLAIN[where]()
    network.__dict__.update(module_state(children=children, **attributes))
    return network


def gains(parameters: dict) -> dict:
    """The numpy-computed gains EG3D's layers keep as attributes (np.float64 scalars in the pickle)."""
    weight = parameters.get("weight")
    if weight is None or weight.dim() < 2:
        return {}
    return {"weight_gain": np.float64(1 / np.sqrt(weight[0].numel()))}


def record(class_name: str, module_src: str = "", parameters=(), buffers=(), children=(), **extra):
    """An object that pickles exactly like a torch_utils.persistence network."""
    state = module_state(parameters, buffers, children, **extra)
    meta = {"type": "class", "version": 4, "class_name": class_name, "state": state, "module_src": module_src}

    class Record:
        def __reduce__(self):
            return _reconstruct_persistent_obj, (meta,)

    network = Record()
    network.meta = meta
    return network


def nested(flat: dict[str, torch.Tensor], module_src: str = "") -> dict:
    """Flat EG3D state_dict names -> the nested records EG3D pickles, by top-level name."""
    tree: dict = {}
    for name, tensor in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node.setdefault("", {})[leaf] = tensor

    def build(node: dict, where: str):
        children = [(k, build(v, f"{where}.{k}")) for k, v in node.items() if k]
        tensors = node.get("", {})
        if where in SEQUENTIALS:
            sequential = torch.nn.Sequential()
            by_index = dict(children)
            for index in range(max(int(k) for k in by_index) + 1):
                sequential._modules[str(index)] = by_index.get(str(index), torch.nn.Softplus())
            return sequential
        if where in _PLAIN:
            return plain(where, children, hidden_dim=64)
        parameters = {k: torch.nn.Parameter(v, requires_grad=False) for k, v in tensors.items() if k not in BUFFERS}
        return record(
            f"Network<{where}>",
            module_src,
            parameters=parameters.items(),
            buffers=[(k, v) for k, v in tensors.items() if k in BUFFERS],
            children=children,
            **gains(parameters),
        )

    return {k: build(v, k) for k, v in tree.items() if k}


TINY = GeneratorConfig(
    z_dim=16,
    c_dim=25,
    w_dim=32,
    plane_resolution=16,
    plane_channels=8,
    channel_base=256,
    channel_max=32,
    decoder_hidden=16,
    decoder_features=8,
    upsampling="eg3d_fir",
    conv_clamp=256.0,
    render=RenderConfig(depth_samples=12, importance_samples=12),
    superresolution=SuperResolutionConfig("SuperresolutionHybrid2X", neural_resolution=32, conv_clamp=256.0),
)
"""EG3D's structure (conditioned mapping, FIR up-sampling, clamp, the cars' 64 -> 128 super-resolution)
at a size that runs in milliseconds."""


def random_generator(config, seed: int = 0) -> TriPlaneGenerator:
    """A generator of `config` whose every tensor (biases and buffers too) is random."""
    torch.manual_seed(seed)
    generator = TriPlaneGenerator(config)
    with torch.no_grad():
        for tensor in generator.state_dict().values():
            tensor.copy_(torch.randn_like(tensor) * 0.5)
    return generator.eval()


LABEL_STD = torch.linspace(0.05, 0.4, 25)
"""A stand-in for the training set's label spread (get_label_std of FFHQ's 25 camera values)."""


def eg3d_state(generator: TriPlaneGenerator) -> dict[str, torch.Tensor]:
    """`generator`'s state_dict under EG3D's names, with what EG3D's G has beside: the FIR filter
    buffer of every block and synthesis layer, and the training loop's dataset_label_std."""
    flat = {eg3d_name(n): t.detach().clone() for n, t in generator.state_dict().items()}
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    fir = torch.outer(taps, taps) / 64
    for name, _ in generator.named_modules():
        if re.fullmatch(r"(synthesis\.b\d+|superresolution\.block\d+)(\.conv\d)?", name):
            flat[eg3d_name(f"{name}.resample_filter")] = fir.clone()
    flat["dataset_label_std"] = LABEL_STD.clone()
    return flat


def eg3d_kwargs(config: GeneratorConfig) -> tuple[dict, dict, dict]:
    """The init kwargs, rendering kwargs and extra state EG3D's TriPlaneGenerator of `config` has."""
    render, superresolution = config.render, config.superresolution
    rendering = {
        "depth_resolution": render.depth_samples,
        "depth_resolution_importance": render.importance_samples,
        "ray_start": render.ray_start,
        "ray_end": render.ray_end,
        "box_warp": render.box_size,
        "white_back": render.background is not None,
        "decoder_lr_mul": config.decoder_lr_multiplier,
        "avg_camera_radius": render.camera_radius,
        "avg_camera_pivot": list(render.camera_pivot),
        "c_gen_conditioning_zero": config.conditioning_scale == 0,
        "c_scale": config.conditioning_scale or 1.0,
    }
    if render.ray_start is None:
        rendering.update(ray_start="auto", ray_end="auto")
    kwargs = dict(
        z_dim=config.z_dim,
        c_dim=config.c_dim,
        w_dim=config.w_dim,
        img_resolution=512,
        img_channels=3,
        channel_base=config.channel_base,
        channel_max=config.channel_max,
        conv_clamp=config.conv_clamp,
        sr_num_fp16_res=0,
    )
    state = {}
    if superresolution is not None:
        rendering.update(
            superresolution_module=f"training.superresolution.{superresolution.kind}",
            sr_antialias=superresolution.antialias,
            superresolution_noise_mode=superresolution.noise_mode,
        )
        kwargs.update(
            img_resolution=superresolution.layout.output_resolution, sr_num_fp16_res=4 if superresolution.conv_clamp is not None else 0
        )
        state["neural_rendering_resolution"] = superresolution.neural_resolution
    kwargs.update(
        mapping_kwargs=EasyDict(num_layers=config.mapping_layers),
        rendering_kwargs=rendering,
        sr_kwargs=EasyDict(channel_base=config.channel_base, channel_max=config.channel_max),
    )
    return kwargs, rendering, state


def _generator_record(flat: dict, kwargs: dict, rendering: dict, state: dict, module_src: str):
    records = nested(flat, module_src)
    renderer = plain(
        "renderer",
        [("ray_marcher", plain("renderer.ray_marcher"))],
        plane_axes=torch.tensor(
            [[[1.0, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 0, 1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]]]
        ),
    )
    ray_sampler = plain("ray_sampler", ray_origins_h=None, ray_directions=None, depths=None, image_coords=None, rendering_options=None)
    children = [("renderer", renderer), ("ray_sampler", ray_sampler), *records.items()]
    buffers = {name: flat[name] for name in ("dataset_label_std",) if name in flat}
    return record(
        "TriPlaneGenerator",
        module_src,
        buffers=buffers.items(),
        children=children,
        _init_args=(),
        _init_kwargs=kwargs,
        rendering_kwargs=rendering,
        _last_planes=None,
        **state,
    )


def _training_networks(module_src: str) -> dict:
    """Small stand-ins for the discriminator and the augmentation pipeline of a snapshot."""
    block = record(
        "DiscriminatorBlock",
        module_src,
        parameters=[("weight", torch.nn.Parameter(torch.randn(8, 6, 3, 3), requires_grad=False))],
        buffers=[("resample_filter", torch.ones(4, 4) / 16)],
    )
    discriminator = record(
        "DualDiscriminator",
        module_src,
        children=[("b512", block)],
        _init_args=(),
        _init_kwargs={"c_dim": 25, "img_resolution": 512, "img_channels": 3},
    )
    augment = record(
        "AugmentPipe", module_src, buffers=[("p", torch.zeros([]))], _init_args=(), _init_kwargs={"xflip": 1}, xflip=np.float64(1.0)
    )
    return {"D": discriminator, "augment_pipe": augment}


def write_checkpoint(
    generator: TriPlaneGenerator,
    path: Path,
    module_src: str = "",
    edit: Callable[[dict], None] | None = None,
    discriminator: bool = True,
    edit_kwargs: Callable[[dict], None] | None = None,
) -> Path:
    """`generator` as EG3D's training loop saves a network snapshot: G (the training weights, made
    to differ here), D, G_ema (`generator`) and augment_pipe (None without `discriminator`, as in a
    run without augmentation). `edit` and `edit_kwargs` may change G_ema's flat EG3D state and its
    init kwargs first (damaged and hostile files)."""
    flat = eg3d_state(generator)
    training = {name: tensor * 1.01 for name, tensor in flat.items()}
    if edit is not None:
        edit(flat)
    kwargs, rendering, state = eg3d_kwargs(generator.config)
    if edit_kwargs is not None:
        edit_kwargs(kwargs)
    with eg3d_modules():
        snapshot = {
            "training_set_kwargs": {
                "class_name": "training.dataset.ImageFolderDataset",
                "resolution": 512,
                "use_labels": True,
                "max_size": 70000,
                "xflip": False,
            },
            "G": _generator_record(training, kwargs, rendering, state, module_src),
            "D": None,
            "G_ema": _generator_record(flat, kwargs, rendering, state, module_src),
            "augment_pipe": None,
        }
        if discriminator:
            snapshot.update(_training_networks(module_src))
        Path(path).write_bytes(pickle.dumps(snapshot))
    return Path(path)


def write_converted(generator: TriPlaneGenerator, path: Path) -> Path:
    """`generator` in the converted `.pth` layout (torch.save of G's init args and kwargs, its
    state_dict, neural rendering resolution and rendering kwargs, under 3DPE's key names)."""
    kwargs, rendering, state = eg3d_kwargs(generator.config)
    with eg3d_modules():
        torch.save(
            {
                "G_init_args": (),
                "G_init_kwargs": EasyDict(kwargs),
                "G": collections.OrderedDict(eg3d_state(generator)),
                "G_neural_rendering_resolution": state.get("neural_rendering_resolution", 64),
                "G_renderinig_kwargs": rendering,
            },
            path,
        )
    return Path(path)


def write_planted(path: Path, command: str) -> Path:
    """A pickle that runs `command` with os.system when loaded by trusting it."""

    class Planted:
        def __reduce__(self):
            return os.system, (command,)

    Path(path).write_bytes(pickle.dumps({"G_ema": Planted()}))
    return Path(path)


def marker_source(marker: Path) -> str:
    """Module source that writes `marker` if anyone runs it."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
