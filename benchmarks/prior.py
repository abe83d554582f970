"""The embedded head prior: fidelity to ProcHead and speed on this machine.

- psnr_db: renders of the bundled generator against analytic renders of the same parameters, on
  held-out heads (seeds never drawn in training) and several views, 128x128.
- field_points_per_s: chunked field queries with the planes computed once.
- render_ms_128: one 128x128 view (48 + 48 samples per ray), planes already computed.
- weights_mb: the bundled safetensors file.

A picture of held-out heads (generated and analytic, front and three-quarter, and the part labels)
is written to out/benchmarks/prior_vs_analytic.png; docs/prior.md shows it.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from bridge.field.renderer import render_orbit
from bridge.images import save_png, sheet
from bridge.prior.model import BUNDLED_WEIGHTS, HeadCode, HeadPrior
from bridge.prior.train import EVAL_SEED_BASE, EVAL_VIEWS, evaluate
from bridge.prior.views import analytic_field, parts_to_colours

FIGURE = Path("out/benchmarks/prior_vs_analytic.png")
HELD_OUT_SEED_BASE = EVAL_SEED_BASE + 500


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


@torch.no_grad()
def figure(prior: HeadPrior, path: Path, heads: int, resolution: int) -> Path:
    """One row per held-out head: generated front, analytic front, generated 3/4, analytic 3/4, labels."""
    pictures = []
    for index in range(heads):
        code = HeadCode.from_seed(HELD_OUT_SEED_BASE + index)
        generated = prior.field_for(code)
        truth = analytic_field(code.params[None], with_parts=True)
        front = render_orbit(truth, prior.render_config, 0.0, 0.0, resolution, channels=("rgb", "parts"))
        three_quarter = render_orbit(truth, prior.render_config, *EVAL_VIEWS[1], resolution)
        pictures += [
            render_orbit(generated, prior.render_config, 0.0, 0.0, resolution)["rgb"][0],
            front["rgb"][0],
            render_orbit(generated, prior.render_config, *EVAL_VIEWS[1], resolution)["rgb"][0],
            three_quarter["rgb"][0],
            parts_to_colours(front["parts"])[0],
        ]
    return save_png(sheet(pictures, columns=5), path)


@torch.no_grad()
def run(quick: bool = False) -> dict:
    prior = HeadPrior.load()
    heads = 2 if quick else 8
    resolution = 64 if quick else 128
    fidelity = evaluate(prior, heads, resolution, EVAL_VIEWS, HELD_OUT_SEED_BASE)

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
        "figure": str(figure(prior, FIGURE, 1 if quick else 3, resolution)),
    }
