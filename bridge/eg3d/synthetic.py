"""Checkpoints in EG3D's pickle layout made from one of our generators: what the tests and the
eg3d benchmark import (NVIDIA's weights cannot be downloaded here), and an exact picture of what
the importer expects.

EG3D pickles each network through `torch_utils.persistence`: a call of
`_reconstruct_persistent_obj(meta)` whose meta holds the class name, the module's *source code*
and the object's state (`_parameters`, `_buffers`, `_modules`, init kwargs, ...). Writing such a
pickle needs those globals to exist, so `eg3d_modules()` puts stand-ins into sys.modules while
pickling. The stand-in loader does what EG3D's does, exec the module source, so a reader that
trusted the file would run it: `module_src` can plant a marker that proves whether it ran.
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

import torch

from bridge.eg3d.convert import eg3d_name
from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.renderer import RenderConfig
from bridge.field.superres import SuperResolutionConfig

BUFFERS = ("noise_const", "w_avg", "resample_filter")
SEQUENTIALS = ("decoder.net",)
"""Module paths EG3D holds in a plain torch.nn.Sequential (with Softplus between the layers)."""


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
    stand_ins = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                 "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    originals = (_reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__,
                 EasyDict.__module__, EasyDict.__qualname__)
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    for name, module in stand_ins.items():
        saved[name] = sys.modules.get(name)
        sys.modules[name] = module
    try:
        yield
    finally:
        (_reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__,
         EasyDict.__module__, EasyDict.__qualname__) = originals
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def record(class_name: str, module_src: str = "", parameters=(), buffers=(), children=(), **extra):
    """An object that pickles exactly like a torch_utils.persistence network."""
    state = {"training": False, "_parameters": collections.OrderedDict(parameters),
             "_buffers": collections.OrderedDict(buffers), "_modules": collections.OrderedDict(children), **extra}
    meta = {"type": "class", "version": 4, "class_name": class_name, "state": state, "module_src": module_src}

    class Record:
        def __reduce__(self):
            return _reconstruct_persistent_obj, (meta,)

    return Record()


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
        return record(f"Network<{where}>", module_src,
                      parameters=[(k, torch.nn.Parameter(v)) for k, v in tensors.items() if k not in BUFFERS],
                      buffers=[(k, v) for k, v in tensors.items() if k in BUFFERS], children=children)

    return {k: build(v, k) for k, v in tree.items() if k}


TINY = GeneratorConfig(z_dim=16, c_dim=25, w_dim=32, plane_resolution=16, plane_channels=8, channel_base=256,
                       channel_max=32, decoder_hidden=16, decoder_features=8, upsampling="eg3d_fir", conv_clamp=256.0,
                       render=RenderConfig(depth_samples=12, importance_samples=12),
                       superresolution=SuperResolutionConfig("SuperresolutionHybrid2X", neural_resolution=32, conv_clamp=256.0))
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


def write_checkpoint(generator: TriPlaneGenerator, path: Path, module_src: str = "",
                     edit: Callable[[dict], None] | None = None) -> Path:
    """`generator` as an EG3D training snapshot (G, G_ema, D), with the FIR filter buffers every
    block and synthesis layer has in the released files. `edit` may change the flat EG3D state
    first (tests of damaged files)."""
    config = generator.config
    flat = {eg3d_name(n): t.detach().clone() for n, t in generator.state_dict().items()}
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    fir = torch.outer(taps, taps) / 64
    for name, _ in generator.named_modules():
        if re.fullmatch(r"(synthesis\.b\d+|superresolution\.block\d+)(\.conv\d)?", name):
            flat[eg3d_name(f"{name}.resample_filter")] = fir.clone()
    if edit is not None:
        edit(flat)
    render, superresolution = config.render, config.superresolution
    rendering = {"depth_resolution": render.depth_samples, "depth_resolution_importance": render.importance_samples,
                 "ray_start": render.ray_start, "ray_end": render.ray_end, "box_warp": render.box_size,
                 "white_back": render.background is not None, "decoder_lr_mul": config.decoder_lr_multiplier,
                 "avg_camera_radius": render.camera_radius, "avg_camera_pivot": list(render.camera_pivot),
                 "c_gen_conditioning_zero": config.conditioning_scale == 0, "c_scale": config.conditioning_scale or 1.0}
    if render.ray_start is None:
        rendering.update(ray_start="auto", ray_end="auto")
    kwargs = dict(z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, img_resolution=512, img_channels=3,
                  channel_base=config.channel_base, channel_max=config.channel_max, conv_clamp=config.conv_clamp,
                  sr_num_fp16_res=0)
    state = {}
    if superresolution is not None:
        rendering.update(superresolution_module=f"training.superresolution.{superresolution.kind}",
                         sr_antialias=superresolution.antialias, superresolution_noise_mode=superresolution.noise_mode)
        kwargs.update(img_resolution=superresolution.layout.output_resolution,
                      sr_num_fp16_res=4 if superresolution.conv_clamp is not None else 0)
        state["neural_rendering_resolution"] = superresolution.neural_resolution
    with eg3d_modules():
        records = nested(flat, module_src)
        kwargs = EasyDict(kwargs, mapping_kwargs=EasyDict(num_layers=config.mapping_layers), rendering_kwargs=rendering)
        generator_record = record("TriPlaneGenerator", module_src, children=list(records.items()),
                                  _init_kwargs=kwargs, rendering_kwargs=rendering, **state)
        Path(path).write_bytes(pickle.dumps({"G": generator_record, "G_ema": generator_record, "D": None,
                                             "training_set_kwargs": EasyDict(resolution=512)}))
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
