"""The embedded head prior: fidelity to ProcHead and speed on this machine.

- psnr_db: renders of the bundled generator against analytic renders of the same parameters, on
  held-out heads (seeds never drawn in training) and several views, 128x128.
- field_points_per_s: chunked field queries with the planes computed once.
- render_ms_128: one 128x128 view (48 + 48 samples per ray), planes already computed.
- weights_mb: the bundled safetensors file.
- clip_eye_colour_top1: the bundled head CLIP naming the eye colour (among the six eye-colour
  prompts) of front renders of the same held-out heads, analytic and generated, side by side. It
  reads the analytic eyes almost always right and the generated ones far less often (green eyes
  are rendered greyish): the prior's own fidelity is what limits eye-colour edits and inversion.

A picture of held-out heads (generated and analytic, front and three-quarter, and the part labels)
is written to out/benchmarks/prior_vs_analytic.png; docs/prior.md shows it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from bridge.field.renderer import render_orbit
from bridge.guidance.clip import load_clip
from bridge.images import save_png, sheet
from bridge.prior.model import BUNDLED_WEIGHTS, PRIOR_RENDER, HeadCode, HeadPrior
from bridge.prior.params import EYE_COLOURS, describe
from bridge.prior.train import EVAL_SEED_BASE, EVAL_VIEWS, evaluate
from bridge.prior.views import analytic_field, parts_to_colours

FIGURE = Path("out/benchmarks/prior_vs_analytic.png")
HELD_OUT_SEED_BASE = EVAL_SEED_BASE + 500
EYE_COLOUR_NAMES = tuple(EYE_COLOURS)


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
def clip_eye_colour_top1(prior: HeadPrior, heads: int, resolution: int = 96) -> dict:
    """The share of held-out heads whose eye colour the head CLIP names right, in analytic and in
    generated front renders of the same heads (24 + 24 samples per ray)."""
    clip = load_clip("bundled")
    templates = ("a head with {} eyes", "a face with {} eyes", "{} eyes")
    prompts = torch.stack([F.normalize(clip.encode_text([t.format(c) for t in templates]).mean(0), dim=-1) for c in EYE_COLOUR_NAMES])
    config = replace(PRIOR_RENDER, depth_samples=24, importance_samples=24)
    right = {"analytic": 0, "generator": 0}
    for index in range(heads):
        code = HeadCode.from_seed(HELD_OUT_SEED_BASE + index)
        truth = describe(code.params)["eye_colour"]
        for name, field in (("analytic", analytic_field(code.params[None])), ("generator", prior.field_for(code))):
            picture = render_orbit(field, config, 0.0, 0.0, resolution, channels=("rgb",))["rgb"]
            named = EYE_COLOUR_NAMES[int((clip.encode_image(picture) @ prompts.T.to(picture)).argmax())]
            right[name] += named == truth
    return {name: round(count / heads, 3) for name, count in right.items()}


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
        "clip_eye_colour_top1": clip_eye_colour_top1(prior, 4 if quick else 48),
        "weights_mb": round(BUNDLED_WEIGHTS.stat().st_size / 2**20, 2),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "quick": quick,
        "figure": str(figure(prior, FIGURE, 1 if quick else 3, resolution)),
    }
