"""Refinement: the latent of a head moved, for a bounded number of steps, until its render matches a picture.

Starting from the encoder's answer, each level of ws (w+) is optimised by Adam against the
picture at the view the caller gave, or, when the view is the encoder's guess (off by a degree or
two), jointly with that view's yaw and pitch: fitting the latent at a wrong view bends the head
to the wrong camera and gains little at the true one. The terms: a pixel loss (mean squared error on the
picture over the background colour read from its border), a CLIP feature loss (1 - cosine of the
CLIP image embeddings of render and picture; off by default, see CLIP_WEIGHT) and a pull toward
the encoder's answer. LPIPS would need VGG or AlexNet weights, which cannot be had here; the CLIP
image embedding is the perceptual term we have. The best step (lowest loss) is returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.field.renderer import render_orbit
from bridge.invert.trainer import composite

REFINE_SAMPLES = 24
"""Stratified and importance samples per ray of the refinement renders (half the prior's)."""
CLIP_WEIGHT = 0.0
"""Weight of the CLIP feature term. With the bundled head CLIP it lowered what the refinement gains
at novel views (3 held-out heads, 20 steps, lr 0.08: +2.7, +4.7, +2.5 dB without it; +3.2, +3.8,
+0.3 dB at 0.05), so by default it is off; a user's CLIP may do better (--clip-weight)."""
LEARNING_RATE = 0.08
"""In units of the encoder's w spread per level (0.04: +2.6, +4.5, +1.7 dB at novel views; 0.15
with the CLIP term diverges)."""
LATENT_WEIGHT = 1e-3
"""Pull toward the encoder's answer (in spread units, squared): a picture does not show the back of a head."""
VIEW_LEARNING_RATE = 1.5
"""Degrees per step (Adam) for the view's yaw and pitch when they are fitted. On 4 held-out heads,
20 steps, input-view gain at the true view: -2.6 dB with the encoder's view kept, +0.2 at 0.3,
+2.2 at 0.8, +3.5 at 1.5 (novel views 22.0, 23.1, 23.9, 24.5 dB)."""
MAX_VIEW_CHANGE = 15.0
"""The fitted view stays within this many degrees of where it started."""
MAX_REFINE_STEPS = 200


@dataclass
class RefineProgress:
    step: int
    total: int
    psnr_db: float
    seconds: float


def border_colour(picture: Tensor) -> Tensor:
    """The median colour (3,) of a picture's outermost pixels: its background, as far as a plain one goes."""
    border = torch.cat([picture[:, 0], picture[:, -1], picture[:, :, 0], picture[:, :, -1]], dim=1)
    return border.median(dim=1).values


def psnr(a: Tensor, b: Tensor) -> float:
    return float(-10 * torch.log10((a - b).square().mean().clamp_min(1e-10)))


def render_on(source, ws: Tensor, yaw: float, pitch: float, background: Tensor, resolution: int) -> Tensor:
    """The head of ws (1, num_ws, w_dim) at a view, over a background colour -> (3, R, R)."""
    config = replace(source.render_config, depth_samples=REFINE_SAMPLES, importance_samples=REFINE_SAMPLES, background=None)
    out = render_orbit(source.generator.field(ws), config, yaw, pitch, resolution, ("rgb",))
    return composite(out["rgb"], out["opacity"], background[None].to(out["rgb"]))[0].clamp(0, 1)


def refine_latent(
    source,
    ws: Tensor,
    picture: Tensor,
    yaw: float,
    pitch: float,
    steps: int,
    w_std: Tensor,
    clip=None,
    clip_weight: float = CLIP_WEIGHT,
    on_progress: Callable[[RefineProgress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    fit_view: bool = False,
) -> tuple[Tensor, dict]:
    """ws (num_ws, w_dim) and a picture (3, R, R) in [0, 1] -> refined ws and figures
    (input-view PSNR before and after, steps done, seconds, and the view: fitted when `fit_view`)."""
    started = time.perf_counter()
    device = source.device
    picture = picture.to(device)
    background = border_colour(picture)
    resolution = picture.shape[-1]
    start = ws.to(device)[None]
    scale = w_std.to(device)
    target_embedding = clip.encode_image(picture[None]).detach() if clip is not None and clip_weight > 0 else None
    with torch.no_grad():
        first = psnr(render_on(source, start, yaw, pitch, background, resolution), picture)
    offset = torch.zeros_like(start, requires_grad=True)
    view = torch.tensor([float(yaw), float(pitch)], requires_grad=fit_view)
    groups = [{"params": [offset], "lr": LEARNING_RATE}] + ([{"params": [view], "lr": VIEW_LEARNING_RATE}] if fit_view else [])
    optimiser = torch.optim.Adam(groups)
    view_start = view.detach().clone()
    best = (float("inf"), start, first, view_start)
    done = 0
    for step in range(min(int(steps), MAX_REFINE_STEPS)):
        if should_stop():
            break
        current = start + offset * scale
        render = render_on(source, current, view[0], view[1], background, resolution)
        pixel = (render - picture).square().mean()
        loss = pixel + LATENT_WEIGHT * offset.square().mean()
        if target_embedding is not None:
            loss = loss + clip_weight * (1 - F.cosine_similarity(clip.encode_image(render[None]), target_embedding, dim=-1)).mean()
        value = loss.item()
        if value < best[0]:
            best = (value, current.detach(), float(-10 * torch.log10(pixel.detach().clamp_min(1e-10))), view.detach().clone())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            view.clamp_(view_start - MAX_VIEW_CHANGE, view_start + MAX_VIEW_CHANGE)
        done = step + 1
        if on_progress:
            on_progress(RefineProgress(done, steps, best[2], time.perf_counter() - started))
    refined, fitted_view = best[1], best[3]
    with torch.no_grad():
        last = psnr(render_on(source, refined, fitted_view[0], fitted_view[1], background, resolution), picture)
    figures = {
        "yaw": round(float(fitted_view[0]), 2),
        "pitch": round(float(fitted_view[1]), 2),
        "refine_steps": done,
        "input_view_psnr_db_encoded": round(first, 2),
        "input_view_psnr_db": round(last, 2),
        "refine_s": round(time.perf_counter() - started, 2),
    }
    return refined[0].detach().cpu(), figures
