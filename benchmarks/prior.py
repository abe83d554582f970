"""The embedded head prior: fidelity to ProcHead and speed on this machine.

- psnr_db: renders of the bundled generator against analytic renders of the same parameters, on
  held-out heads (seeds never drawn in training) and several views, 128x128.
- field_points_per_s: chunked field queries with the planes computed once.
- render_ms_128: one 128x128 view (48 + 48 samples per ray), planes already computed.
- weights_mb: the bundled safetensors file.
"""

from __future__ import annotations

import platform
import time

import torch

from bridge.field.renderer import render_orbit
from bridge.prior.model import BUNDLED_WEIGHTS, HeadCode, HeadPrior
from bridge.prior.train import EVAL_SEED_BASE, EVAL_VIEWS, evaluate


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


@torch.no_grad()
def run(quick: bool = False) -> dict:
    prior = HeadPrior.load()
    heads = 2 if quick else 8
    resolution = 64 if quick else 128
    fidelity = evaluate(prior, heads, resolution, EVAL_VIEWS, EVAL_SEED_BASE + 500)

    field = prior.field_for(HeadCode.from_seed(1))
    points = torch.rand(1 if quick else 2, 1_000_000, 3) - 0.5
    points = points.reshape(-1, 3)
    query_s = _best_of(1 if quick else 3, lambda: field.query(points))
    render_s = _best_of(1 if quick else 3, lambda: render_orbit(field, prior.render_config, 20.0, 5.0, 128))
    return {
        "psnr_db": round(fidelity["psnr_db"], 3),
        "psnr_db_min": round(fidelity["psnr_db_min"], 3),
        "psnr_images": fidelity["images"],
        "psnr_resolution": resolution,
        "field_points_per_s": round(points.shape[0] / query_s),
        "render_ms_128": round(1000 * render_s, 1),
        "weights_mb": round(BUNDLED_WEIGHTS.stat().st_size / 2**20, 2),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "quick": quick,
    }
