"""EG3D checkpoints: import correctness on a checkpoint built here, and the field at EG3D's
released sizes on this machine (random weights: NVIDIA's cannot be downloaded here).

- parity_max_abs_err: a random-weight generator written with EG3D's pickle layout and names
  (bridge/eg3d/synthetic.py), imported, against the same tensors loaded straight into our classes:
  the largest difference over ws, planes and decoder outputs.
- pickle_code_executed: how many planted payloads ran while reading: the module source inside
  every persistence record of that checkpoint, and an os.system call in another pickle (0 is right).
- import_s_released: reading and converting a released-size checkpoint (512-d w, 256^2 x 32-channel
  planes, 64-hidden decoder) and caching it as safetensors.
- planes_ms, render_ms_128, grid_s_128: the backbone for one head, a 128^2 neural render
  (48 + 48 samples per ray) and a 128^3 FieldGrid at released sizes; peak_rss_mb.
  Super-resolution is not built yet, so there is no figure with it.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bridge.eg3d.checkpoint import read_checkpoint
from bridge.eg3d.convert import import_checkpoint
from bridge.eg3d.synthetic import TINY, marker_source, random_generator, write_checkpoint, write_planted
from bridge.errors import WeightsError
from bridge.field.generator import GeneratorConfig
from bridge.field.grid import sample_grid
from bridge.field.weights import load_generator
from bridge.prior.views import render


def _parity(folder: Path) -> tuple[float, int]:
    marker = folder / "ran.txt"
    original = random_generator(TINY)
    imported, _ = load_generator(import_checkpoint(write_checkpoint(original, folder / "small.pkl", marker_source(marker)),
                                                   folder / "small"))
    torch.manual_seed(1)
    z, c, points = torch.randn(4, TINY.z_dim), torch.randn(4, TINY.c_dim), torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        ws, ws_imported = original.map(z, c), imported.map(z, c)
        errors = [(ws - ws_imported).abs().max(), (original.planes(ws) - imported.planes(ws)).abs().max()]
        theirs, ours = original.field(ws[:1])(points), imported.field(ws[:1])(points)
        errors += [(theirs[k] - ours[k]).abs().max() for k in theirs]
    try:
        read_checkpoint(write_planted(folder / "planted.pkl", f"touch {folder / 'planted_ran.txt'}"))
    except WeightsError:
        pass
    executed = int(marker.exists()) + int((folder / "planted_ran.txt").exists())
    return float(max(errors)), executed


def run(quick: bool = False) -> dict:
    torch.set_grad_enabled(False)
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="text-edit-eg3d-bench-") as folder:
        folder = Path(folder)
        figures["parity_max_abs_err"], figures["pickle_code_executed"] = _parity(folder)
        released = GeneratorConfig(upsampling="eg3d_fir")
        if quick:
            released = GeneratorConfig(upsampling="eg3d_fir", plane_resolution=64, channel_max=128)
        started = time.perf_counter()
        path = write_checkpoint(random_generator(released), folder / "released.pkl")
        figures["checkpoint_mb"] = round(path.stat().st_size / 1e6, 1)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        generator, _ = load_generator(import_checkpoint(path, folder / "released"))
        figures["import_s_released"] = round(time.perf_counter() - started, 2)
        figures["write_checkpoint_s"] = round(write_s, 2)
    torch.manual_seed(2)
    ws = generator.map(torch.randn(1, released.z_dim), torch.randn(1, released.c_dim), truncation_psi=0.7)
    times = []
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        field = generator.field(ws)
        times.append(time.perf_counter() - started)
    figures["planes_ms"] = round(1000 * statistics.median(times), 1)
    resolution = 32 if quick else 128
    started = time.perf_counter()
    render(field, released.render, 0.0, 0.0, resolution)
    figures[f"render_ms_{resolution}"] = round(1000 * (time.perf_counter() - started), 1)
    grid = 32 if quick else 128
    started = time.perf_counter()
    sample_grid(field, grid, 10.0, released.render.box_size)
    figures[f"grid_s_{grid}"] = round(time.perf_counter() - started, 2)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["device"] = "cpu"
    figures["threads"] = torch.get_num_threads()
    return figures
