"""EG3D checkpoints: import correctness on a checkpoint built here, and the cost of EG3D's released
sizes on this machine (random weights: NVIDIA's cannot be downloaded here).

- parity_max_abs_err: a random-weight generator (with super-resolution) written with EG3D's pickle
  layout and names (bridge/eg3d/synthetic.py), imported, against the same tensors loaded straight
  into our classes: the largest difference over ws, planes, decoder and super-resolution outputs.
- pickle_code_executed: how many planted payloads ran while reading: the module source inside
  every persistence record of that checkpoint, and an os.system call in another pickle (0 is right).
- import_s_released: reading and converting a released-size checkpoint (ffhq512-128's sizes:
  512-d w, 256^2 x 32-channel planes, 64-hidden decoder, SuperresolutionHybrid8XDC) and caching
  it as safetensors.
- planes_ms: the backbone for one head. apply_render_ms_128: one edit applied (an untrained edit
  module: the cost is the same) and a 128^2 neural render (48 + 48 samples per ray);
  apply_render_sr_ms_512: the same render with its features super-resolved to the 512^2 picture.
  grid_s_128 / grid_s_256: FieldGrids of the edited field. peak_rss_mb (and peak_cuda_mb on a GPU).
- On the GPU the figures are medians after a warm-up, synchronised; on CPU fewer repeats.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bridge.eg3d.checkpoint import read_checkpoint
from bridge.eg3d.convert import import_checkpoint
from bridge.eg3d.heads import EG3DHeads
from bridge.eg3d.synthetic import TINY, marker_source, random_generator, write_checkpoint, write_planted
from bridge.errors import WeightsError
from bridge.field.generator import GeneratorConfig
from bridge.field.grid import sample_grid
from bridge.field.renderer import render_orbit
from bridge.field.superres import SuperResolutionConfig
from bridge.field.weights import load_generator
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import EditModule, EditSpec


def _parity(folder: Path) -> tuple[float, int]:
    marker = folder / "ran.txt"
    original = random_generator(TINY)
    imported, _ = load_generator(
        import_checkpoint(write_checkpoint(original, folder / "small.pkl", marker_source(marker)), folder / "small")
    )
    torch.manual_seed(1)
    z, c, points = torch.randn(4, TINY.z_dim), torch.randn(4, TINY.c_dim), torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        ws, ws_imported = original.map(z, c), imported.map(z, c)
        errors = [(ws - ws_imported).abs().max(), (original.planes(ws) - imported.planes(ws)).abs().max()]
        theirs, ours = original.field(ws[:1])(points), imported.field(ws[:1])(points)
        errors += [(theirs[k] - ours[k]).abs().max() for k in theirs]
        features = torch.rand(4, TINY.decoder_features, 64, 64) * 2 - 1
        errors.append((original.superresolution(features, ws) - imported.superresolution(features, ws)).abs().max())
    try:
        read_checkpoint(write_planted(folder / "planted.pkl", f"touch {folder / 'planted_ran.txt'}"))
    except WeightsError:
        pass
    executed = int(marker.exists()) + int((folder / "planted_ran.txt").exists())
    return float(max(errors)), executed


def _timed(device: torch.device, work, repeats: int) -> float:
    """Median milliseconds of `work()` (after one warm-up call on a GPU)."""
    if device.type == "cuda":
        work()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def run(quick: bool = False) -> dict:
    torch.set_grad_enabled(False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="text-edit-eg3d-bench-") as folder:
        folder = Path(folder)
        figures["parity_max_abs_err"], figures["pickle_code_executed"] = _parity(folder)
        released = GeneratorConfig(upsampling="eg3d_fir", conv_clamp=256.0, superresolution=SuperResolutionConfig(conv_clamp=256.0))
        if quick:
            released = dataclasses.replace(
                released,
                plane_resolution=64,
                channel_max=128,
                superresolution=SuperResolutionConfig("SuperresolutionHybrid2X", neural_resolution=32),
            )
        started = time.perf_counter()
        path = write_checkpoint(random_generator(released), folder / "released.pkl")
        figures["checkpoint_mb"] = round(path.stat().st_size / 1e6, 1)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        weights = import_checkpoint(path, folder / "released")
        figures["import_s_released"] = round(time.perf_counter() - started, 2)
        figures["write_checkpoint_s"] = round(write_s, 2)
        heads = EG3DHeads.load(weights, device)
    generator = heads.generator
    edit = EditModule.untrained(EditSpec("blue eyes", "eyes"), generator, heads.sha256)
    edit.modules.to(device)
    torch.manual_seed(2)
    ws = heads.sample_ws(1, torch.Generator().manual_seed(2))
    repeats = 1 if quick else (10 if device.type == "cuda" else 3)
    figures["planes_ms"] = round(_timed(device, lambda: generator.field(ws), repeats), 1)
    neural = released.superresolution.neural_resolution

    def apply_and_render(super_resolve: bool):
        field, edited_ws = apply_edits(generator, ws, [EditStep(edit)])
        rendered = render_orbit(field, released.render, 0.0, 0.0, neural, ("rgb", "features") if super_resolve else ("rgb",))
        return generator.super_resolve(rendered, edited_ws) if super_resolve else rendered["rgb"]

    output = released.superresolution.layout.output_resolution
    figures[f"apply_render_ms_{neural}"] = round(_timed(device, lambda: apply_and_render(False), repeats), 1)
    figures[f"apply_render_sr_ms_{output}"] = round(_timed(device, lambda: apply_and_render(True), repeats), 1)
    field, _ = apply_edits(generator, ws, [EditStep(edit)])
    for grid in (32,) if quick else (128, 256):
        figures[f"grid_s_{grid}"] = round(
            _timed(device, lambda grid=grid: sample_grid(field, grid, heads.surface_level, released.render.box_size, device=device), 1)
            / 1000,
            2,
        )
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device.type == "cuda":
        figures["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        figures["gpu"] = torch.cuda.get_device_name()
    figures["device"] = device.type
    figures["threads"] = torch.get_num_threads()
    return figures
