"""An EG3D generator's state (read by checkpoint.py) onto bridge/field's TriPlaneGenerator.

Names: EG3D nests the StyleGAN2 backbone as `backbone.mapping.*` / `backbone.synthesis.*` and the
decoder as `decoder.net.0` / `decoder.net.2` (a Sequential with Softplus between); ours are
`mapping.*`, `synthesis.*`, `decoder.fc0`, `decoder.fc1`; `superresolution.*` keeps its names.
Sizes come from the checkpoint's init and rendering kwargs and are checked against every tensor's
shape.

An imported generator up-samples the way EG3D does (config.upsampling = "eg3d_fir": transposed
convolution and the zero-padded [1, 3, 3, 1] FIR filter, bridge/field/layers.py) and clamps
activations where its kwargs say so. Left out, and listed in the import's metadata: the
`resample_filter` buffers (always that same filter), the buffers EG3D's training loop adds
(`dataset_label_std`, with a note), and a super-resolution network of a kind
bridge/field/superres.py does not know (pictures are then the neural render); see docs/eg3d.md.

Sizes are read as bounded integers and the generator they describe is first built on torch's meta
device (no memory) and compared with the file's tensors, so a small file that declares a huge
network is refused before anything that size is allocated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bridge.eg3d.checkpoint import PersistentRecord, flat_state, generator_record, generator_settings, read_checkpoint
from bridge.errors import WeightsError
from bridge.field.generator import GeneratorConfig, TriPlaneGenerator
from bridge.field.renderer import RenderConfig
from bridge.field.superres import LAYOUTS, SuperResolutionConfig
from bridge.field.weights import file_sha256, save_generator, state_mismatch

SKIPPED = (re.compile(r"(^|\.)resample_filter$"),)
TRAINING_ONLY = {
    "dataset_label_std": "the training set's camera-label spread, which EG3D's training loop "
    "registers on G and nothing that makes heads reads"
}
"""Buffers of a training snapshot that only training reads, and why they are left out."""
SUPERRESOLUTION = "superresolution."
RENAMES = (
    (re.compile(r"^backbone\."), ""),
    (re.compile(r"^decoder\.net\.0\."), "decoder.fc0."),
    (re.compile(r"^decoder\.net\.2\."), "decoder.fc1."),
)


@dataclass
class Imported:
    generator: TriPlaneGenerator
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    init_kwargs: dict = field(default_factory=dict)
    rendering_kwargs: dict = field(default_factory=dict)


def our_name(name: str) -> str | None:
    """Our state_dict name for an EG3D one; None for tensors we leave out."""
    if name in TRAINING_ONLY or any(pattern.search(name) for pattern in SKIPPED):
        return None
    for pattern, replacement in RENAMES:
        name = pattern.sub(replacement, name)
    return name


def eg3d_name(ours: str) -> str:
    """EG3D's state_dict name for one of ours (the inverse of `our_name`)."""
    for prefix, theirs in (
        ("mapping.", "backbone.mapping."),
        ("synthesis.", "backbone.synthesis."),
        ("decoder.fc0.", "decoder.net.0."),
        ("decoder.fc1.", "decoder.net.2."),
        (SUPERRESOLUTION, SUPERRESOLUTION),
    ):
        if ours.startswith(prefix):
            return theirs + ours[len(prefix) :]
    raise ValueError(f"{ours} has no EG3D counterpart")


LIMITS = {
    "z_dim": 4096,
    "c_dim": 4096,
    "w_dim": 4096,
    "channel_base": 1 << 20,
    "channel_max": 4096,
    "depth_resolution": 1024,
    "depth_resolution_importance": 1024,
    "neural_rendering_resolution": 1024,
    "num_layers": 64,
    "plane_resolution": 2048,
    "plane_channels": 1024,
    "decoder_hidden": 4096,
    "decoder_features": 1024,
}
"""The largest size of each kind the importer takes (EG3D's released models are far below)."""


def size(value, name: str, default: int | None = None) -> int:
    """A size from the checkpoint: a whole number within LIMITS[name], else one sentence."""
    if value is None and default is not None:
        value = default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMITS.get(name, 1 << 16):
        raise WeightsError(
            f"The checkpoint's {name} is {str(value)[:40]!r}, not a whole number from 0 to "
            f"{LIMITS.get(name, 1 << 16)}; it is not an EG3D generator the bridge can build."
        )
    return value


def number(value, name: str, default: float) -> float:
    """A finite real number from the checkpoint's kwargs, else one sentence."""
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > 1e6:
        raise WeightsError(
            f"The checkpoint's {name} is {str(value)[:40]!r}, not a finite number; it is not an EG3D generator the bridge can build."
        )
    return float(value)


SHAPENET_FOCAL = 1.025390625
"""EG3D's checkpoints do not store the focal length of their dataset's camera; ShapeNet's (its
cars sample rays within the box, "auto") differs from FFHQ's and AFHQ's."""


def render_config(rendering: dict) -> RenderConfig:
    ray_start, ray_end = rendering.get("ray_start", 2.25), rendering.get("ray_end", 3.3)
    box_limits = ray_start == "auto" or ray_end == "auto"
    if not box_limits and not (isinstance(ray_start, (int, float)) and isinstance(ray_end, (int, float))):
        raise WeightsError(
            f"The checkpoint's ray range ({str(ray_start)[:20]!r}, {str(ray_end)[:20]!r}) is neither "
            "numbers nor 'auto'; it is not an EG3D generator the bridge can render."
        )
    defaults = RenderConfig()
    pivot = rendering.get("avg_camera_pivot", defaults.camera_pivot)
    if not isinstance(pivot, (list, tuple)) or len(pivot) != 3:
        raise WeightsError(
            f"The checkpoint's avg_camera_pivot is {str(pivot)[:40]!r}, not three numbers; "
            "it is not an EG3D generator the bridge can render."
        )
    return RenderConfig(
        ray_start=None if box_limits else number(ray_start, "ray_start", 2.25),
        ray_end=None if box_limits else number(ray_end, "ray_end", 3.3),
        depth_samples=size(rendering.get("depth_resolution"), "depth_resolution", 48),
        importance_samples=size(rendering.get("depth_resolution_importance"), "depth_resolution_importance", 48),
        box_size=number(rendering.get("box_warp"), "box_warp", 1.0),
        background=(1.0, 1.0, 1.0) if rendering.get("white_back") else None,
        camera_radius=number(rendering.get("avg_camera_radius"), "avg_camera_radius", defaults.camera_radius),
        camera_pivot=tuple(number(v, "avg_camera_pivot", 0.0) for v in pivot),
        focal=number(rendering.get("focal"), "focal", SHAPENET_FOCAL if box_limits else defaults.focal),
    )


def superresolution_config(kwargs: dict, rendering: dict, neural_resolution, state: dict) -> tuple[SuperResolutionConfig | None, str]:
    """EG3D's picture network as the checkpoint describes it, or None and why not ("" when it has none)."""
    if not any(name.startswith(SUPERRESOLUTION) for name in state):
        return None, ""
    kind = str(rendering.get("superresolution_module") or "").rsplit(".", 1)[-1]
    if kind not in LAYOUTS:
        return (
            None,
            f"its super-resolution network ({kind or 'of unnamed kind'}) is not one the bridge can build, so pictures are the neural render",
        )
    return SuperResolutionConfig(
        kind=kind,
        neural_resolution=size(neural_resolution or LAYOUTS[kind].input_resolution, "neural_rendering_resolution"),
        antialias=bool(rendering.get("sr_antialias", True)) and kind != "SuperresolutionHybridDeepfp32",
        conv_clamp=256.0 if size(kwargs.get("sr_num_fp16_res"), "sr_num_fp16_res", 0) > 0 else None,
        noise_mode=str(rendering.get("superresolution_noise_mode", "none")),
    ), ""


def generator_config(
    kwargs: dict, rendering: dict, state: dict[str, torch.Tensor], superresolution: SuperResolutionConfig | None = None
) -> GeneratorConfig:
    """Sizes from the init kwargs where EG3D states them, otherwise from the tensors' shapes."""
    resolutions = sorted(int(m.group(1)) for n in state if (m := re.match(r"^synthesis\.b(\d+)\.torgb\.weight$", n)))
    needed = ["mapping.fc0.weight", "decoder.fc0.weight", "decoder.fc1.weight"]
    missing = [name for name in needed if name not in state] or ([] if resolutions else ["synthesis.b*.torgb.weight"])
    if missing:
        raise WeightsError(f"The checkpoint's generator lacks {', '.join(missing)}; it is not an EG3D tri-plane generator.")
    torgb, fc0 = state[f"synthesis.b{resolutions[-1]}.torgb.weight"], state["mapping.fc0.weight"]
    mapping_kwargs = kwargs.get("mapping_kwargs") if isinstance(kwargs.get("mapping_kwargs"), dict) else {}
    mapping_layers = size(sum(1 for n in state if re.match(r"^mapping\.fc\d+\.weight$", n)), "num_layers")
    size(mapping_kwargs.get("num_layers"), "num_layers", mapping_layers)
    clamp = kwargs.get("conv_clamp")
    return GeneratorConfig(
        z_dim=size(kwargs.get("z_dim"), "z_dim", fc0.shape[-1]),
        c_dim=size(kwargs.get("c_dim"), "c_dim", 25),
        w_dim=size(kwargs.get("w_dim"), "w_dim", fc0.shape[0]),
        mapping_layers=mapping_layers,
        conditioning_scale=0.0 if rendering.get("c_gen_conditioning_zero") else number(rendering.get("c_scale"), "c_scale", 0.0),
        plane_resolution=size(resolutions[-1], "plane_resolution"),
        plane_channels=size(torgb.shape[0] // 3, "plane_channels"),
        channel_base=size(kwargs.get("channel_base"), "channel_base", 32768),
        channel_max=size(kwargs.get("channel_max"), "channel_max", 512),
        use_noise=any(n.endswith("noise_const") for n in state),
        upsampling="eg3d_fir",
        conv_clamp=None if clamp is None else number(clamp, "conv_clamp", 256.0),
        decoder_hidden=size(state["decoder.fc0.weight"].shape[0], "decoder_hidden"),
        decoder_features=size(state["decoder.fc1.weight"].shape[0] - 1, "decoder_features"),
        decoder_lr_multiplier=number(rendering.get("decoder_lr_mul"), "decoder_lr_mul", 1.0),
        render=render_config(rendering),
        superresolution=superresolution,
    )


MAX_PARAMETERS = 500_000_000
"""The most numbers an imported generator may hold (EG3D's released ones: about 30 million)."""


def _unshared(name: str, tensor: torch.Tensor) -> None:
    """A tensor may not read more numbers than its storage holds (a stride-0 view of four bytes
    declaring a (4096, 4096, 3, 3) weight would be filled out to gigabytes)."""
    if tensor.numel() * tensor.element_size() > tensor.untyped_storage().nbytes():
        raise WeightsError(
            f"The checkpoint's {name} declares {tensor.numel():,} numbers over a storage of "
            f"{tensor.untyped_storage().nbytes():,} bytes; the file is damaged or crafted, so it was not imported."
        )


def convert(source: PersistentRecord | dict, where: str = "the checkpoint") -> Imported:
    """`source`'s generator on our classes; WeightsError (one sentence) for anything that does not fit."""
    try:
        return _convert(source, where)
    except WeightsError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, RuntimeError, MemoryError) as error:
        raise WeightsError(
            f"The generator in {where} cannot be built ({type(error).__name__}: {str(error)[:160]}); "
            "it is not an EG3D tri-plane generator the bridge can import."
        ) from None


def _convert(source: PersistentRecord | dict, where: str) -> Imported:
    theirs = flat_state(source)
    for name, tensor in theirs.items():
        _unshared(name, tensor)
    ours, skipped = {}, []
    for name, tensor in theirs.items():
        mapped = our_name(name)
        if mapped is None:
            skipped.append(name)
        else:
            ours[mapped] = tensor
    kwargs, rendering, neural_resolution = generator_settings(source)
    superresolution, why_not = superresolution_config(kwargs, rendering, neural_resolution, ours)
    notes = [why_not] if why_not else []
    if superresolution is None:
        skipped += [name for name in ours if name.startswith(SUPERRESOLUTION)]
        ours = {name: tensor for name, tensor in ours.items() if not name.startswith(SUPERRESOLUTION)}
    config = generator_config(kwargs, rendering, ours, superresolution)
    with torch.device("meta"):
        expected = TriPlaneGenerator(config).state_dict()
    total = sum(tensor.numel() for tensor in expected.values())
    if total > MAX_PARAMETERS:
        raise WeightsError(f"The generator in {where} would hold {total:,} numbers, far more than any EG3D model; it was not built.")
    problems = state_mismatch(expected, ours)
    if problems:
        raise WeightsError(f"The generator in {where} does not fit EG3D's layout ({problems}).")
    generator = TriPlaneGenerator(config)
    generator.load_state_dict({name: tensor.to(torch.float32) for name, tensor in ours.items()})
    notes += [f"left out {name}: {why}" for name, why in TRAINING_ONLY.items() if name in skipped]
    return Imported(generator.eval().requires_grad_(False), sorted(skipped), notes, kwargs, rendering)


def import_checkpoint(path: Path, out: Path) -> Path:
    """Read `path` safely, convert its generator, and cache it as OUT/generator.safetensors + .json."""
    path = Path(path)
    imported = convert(generator_record(read_checkpoint(path), path), str(path))
    weights = Path(out) / "generator.safetensors"
    try:
        save_generator(
            imported.generator,
            weights,
            extra={
                "source": path.name,
                "source_sha256": file_sha256(path),
                "converted_from": "EG3D",
                "skipped_tensors": imported.skipped,
                "notes": imported.notes,
                "init_kwargs": {
                    str(k): v
                    for k, v in imported.init_kwargs.items()
                    if isinstance(v, (int, str, bool)) or (isinstance(v, float) and math.isfinite(v))
                },
            },
        )
    except OSError as error:  # --out is a file, read-only, on a full disk...
        raise WeightsError(
            f"Could not write the generator into {out} ({error.strerror or error}); give --out a folder you can write to."
        ) from None
    return weights
