"""Training the prior generator to reproduce ProcHead.

Supervision is direct and 3D: every step draws fresh heads (parameters + noise), samples points
in the box -- uniformly, and concentrated near the analytic surface -- and regresses the
generator's raw density and colour onto the analytic values there. No rendering is needed to
train; render PSNR against the analytic renders is the evaluation (`evaluate`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from bridge.budget import Budget, cosine_factor
from bridge.field.generator import TriPlaneGenerator
from bridge.field.renderer import render_orbit
from bridge.field.weights import save_generator
from bridge.prior import analytic
from bridge.prior.model import NOISE_DIM, HeadCode, HeadPrior, prochead_generator_config
from bridge.prior.params import sample_params
from bridge.prior.views import analytic_field, psnr

EVAL_SEED_BASE = 1_000_000  # held-out heads: seeds from here on are never drawn in training
EVAL_VIEWS = ((0.0, 0.0), (35.0, 5.0), (-30.0, -8.0))


@dataclass(frozen=True)
class PriorTrainingConfig:
    seed: int = 0
    steps: int = 8000
    batch: int = 4
    uniform_points: int = 3072
    surface_points: int = 9216
    surface_band: float = 0.02
    part_weights: tuple[float, ...] = (1.0, 1.0, 8.0, 1.0, 4.0, 2.0, 4.0, 1.0)
    """Extra sampling weight of surface points per part label (background, skin, eyes, hair,
    eyebrows, nose, mouth, ears): small parts would otherwise get a few dozen points per head."""
    eye_points: int = 0
    """Surface points per head drawn on the eyeballs' fronts, on top of `surface_points`: an iris
    is about 1/5000 of the surface, so the uniform candidate pool holds one or two of its points
    and the generator learns a colour between the palettes (green read as grey)."""
    colour_weight: float = 4.0
    learning_rate: float = 3e-3
    init_weights: str | None = None
    """Fine-tune these generator weights (same config) instead of starting empty."""
    final_lr_fraction: float = 0.05
    time_limit_minutes: float | None = None
    ema_half_life: float | None = 300.0
    """Steps after which a step's weights count half in the running average (StyleGAN's G_ema);
    batches of four heads make single steps noisy. None: no average."""
    eval_every: int = 1000
    eval_heads: int = 4
    eval_resolution: int = 64
    plane_resolution: int = 128


@dataclass
class Progress:
    step: int
    total: int
    loss: float
    seconds: float
    eval_psnr_db: float | None = None


def sample_points(
    params: Tensor,
    count_uniform: int,
    count_surface: int,
    band: float,
    generator: torch.Generator,
    part_weights: tuple[float, ...] | None = None,
    count_eye: int = 0,
):
    """Training points for heads `params` (B, P) and the analytic values there.

    Near-surface points: uniform candidates are drawn (with replacement) with probability
    ~ exp(-|sdf| / band) * part_weights[label], then jittered by band / 2 so that repeated draws
    still spread. Uniform points cover the rest of the box, and `count_eye` points the fronts of
    the eyeballs (`_eye_front_points`).
    -> points (B, count_surface + count_uniform, 3) and the analytic dict at those points."""
    batch = params.shape[0]
    candidates = torch.rand(batch, 4 * count_surface, 3, generator=generator) - 0.5
    values = analytic.query(candidates, params)
    weights = torch.exp(-values["sdf"][..., 0].abs() / band) + 1e-6
    if part_weights is not None:
        weights = weights * torch.tensor(part_weights)[values["label"]]
    chosen = torch.multinomial(weights, count_surface, replacement=True, generator=generator)
    surface = candidates.gather(1, chosen.unsqueeze(-1).expand(-1, -1, 3))
    surface = surface + torch.randn(surface.shape, generator=generator) * (band / 2)
    uniform = torch.rand(batch, count_uniform, 3, generator=generator) - 0.5
    parts = [surface.clamp(-0.5, 0.5), uniform]
    if count_eye:
        parts.append(_eye_front_points(params, count_eye, band, generator))
    points = torch.cat(parts, dim=1)
    values = analytic.query(points, params)
    return points, {"sigma": values["sigma"], "rgb": values["rgb"], "sdf": values["sdf"]}


def _eye_front_points(params: Tensor, count: int, band: float, generator: torch.Generator) -> Tensor:
    """(B, count, 3) points near the surface of the front half of either eyeball, where sclera,
    iris and pupil are drawn: directions on the front hemisphere, radii within +-band/2."""
    lay = analytic.layout(params)
    batch = params.shape[0]
    side = torch.rand(batch, count, 1, generator=generator) < 0.5
    left, right = (torch.cat(lay[name], dim=-1).unsqueeze(1) for name in ("eye_left_c", "eye_right_c"))
    centre = torch.where(side, left, right)
    direction = torch.nn.functional.normalize(torch.randn(batch, count, 3, generator=generator), dim=-1)
    direction = torch.cat([direction[..., :2], direction[..., 2:].abs()], dim=-1)
    radius = lay["eye_radius"].unsqueeze(1) + (torch.rand(batch, count, 1, generator=generator) - 0.5) * band
    return (centre + direction * radius).clamp(-0.5, 0.5)


def start_empty(model: TriPlaneGenerator, sigma: float = -20.0) -> None:
    """Initialise the decoder so that every point starts as empty space (raw sigma ~ `sigma`):
    most of the box is empty, and fog is the slowest thing to unlearn."""
    fc = model.decoder.fc1
    with torch.no_grad():
        fc.bias[0] = sigma / fc.bias_gain


def field_loss(predicted: dict[str, Tensor], target: dict[str, Tensor], colour_weight: float) -> Tensor:
    """Density error where it changes a render, plus colour error where rays stop.

    Near the surface the raw density is regressed exactly. Deep inside (target saturated high)
    only falling short of the target counts, and deep in empty space only rising above -0.2 of the
    scale counts (density softplus(-11) ~ 2e-5 is empty enough): matching +-50 there would spend
    capacity on values no render can see.
    """
    scale = analytic.SIGMA_SCALE
    error = predicted["sigma"] - target["sigma"]
    deep_inside = target["sigma"] > 0.95 * scale
    deep_outside = target["sigma"] < -0.95 * scale
    error = torch.where(deep_inside, error.clamp(max=0.0), error)
    error = torch.where(deep_outside, (predicted["sigma"] + 0.2 * scale).clamp(min=0.0), error)
    sigma_loss = (error / scale).square().mean()
    visible = torch.sigmoid(-target["sdf"] / analytic.SURFACE_WIDTH)
    colour_error = (visible * (predicted["rgb"] - target["rgb"]).square()).sum()
    colour_loss = colour_error / (3 * visible.sum()).clamp_min(1.0)
    return sigma_loss + colour_weight * colour_loss


def ema_beta(step: int, half_life: float) -> float:
    """Decay of the weight average at `step`: 0.5 ** (1 / half_life), ramped up from 0 so that the
    first steps' weights, which are far from any head, do not linger."""
    return min(0.5 ** (1.0 / half_life), (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_average(average: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    for a, p in zip(average.parameters(), model.parameters()):
        a.lerp_(p, 1.0 - beta)
    for a, b in zip(average.buffers(), model.buffers()):
        a.copy_(b)


@torch.no_grad()
def evaluate(prior: HeadPrior, heads: int, resolution: int, views=EVAL_VIEWS, seed_base: int = EVAL_SEED_BASE) -> dict:
    """Render PSNR of generated against analytic heads, held-out seeds, several views."""
    codes = [HeadCode.from_seed(seed_base + i) for i in range(heads)]
    params = torch.stack([c.params for c in codes])
    noise = torch.stack([c.noise for c in codes])
    generated = prior.field(params, noise)
    truth = analytic_field(params)
    scores = []
    for yaw, pitch in views:
        a = render_orbit(generated, prior.render_config, yaw, pitch, resolution, batch=heads)["rgb"]
        b = render_orbit(truth, prior.render_config, yaw, pitch, resolution, batch=heads)["rgb"]
        scores.append(psnr(a, b))
    scores = torch.cat(scores)
    return {"psnr_db": float(scores.mean()), "psnr_db_min": float(scores.min()), "images": len(scores)}


def train_prior(
    config: PriorTrainingConfig,
    out_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    command: str = "",
) -> dict:
    """Train, write OUT/prochead.safetensors + .json (also every eval as a checkpoint), return the metadata."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if config.init_weights:
        model = HeadPrior.load(config.init_weights).generator.train().requires_grad_(True)
    else:
        model = TriPlaneGenerator(prochead_generator_config(plane_resolution=config.plane_resolution))
        start_empty(model)
    average = copy.deepcopy(model).requires_grad_(False).eval() if config.ema_half_life else None
    prior = HeadPrior(model)
    evaluated = HeadPrior(average) if average is not None else prior
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    budget = Budget(config.steps, config.time_limit_minutes)

    def learning_rate(_: int) -> float:
        return cosine_factor(budget.fraction(step), config.final_lr_fraction)

    step = 0
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    out_path = Path(out_dir) / "prochead.safetensors"
    history = []
    last_eval = None

    def write(final: bool, weights: TriPlaneGenerator) -> dict:
        return save_generator(
            weights,
            out_path,
            {
                "prior": {"family": "ProcHead", "noise_dim": NOISE_DIM, "conditioning": "normalised head parameters"},
                "training": {
                    "command": command,
                    "config": asdict(config),
                    "steps_done": step,
                    "minutes": round(budget.seconds / 60, 2),
                    "threads": torch.get_num_threads(),
                    "finished": final,
                    "history": history,
                },
                "metrics": last_eval or {},
            },
        )

    model.train()
    while step < config.steps:
        if should_stop():
            break
        if budget.exhausted(step):
            break
        params = sample_params(config.batch, generator)
        noise = torch.randn(config.batch, NOISE_DIM, generator=generator)
        points, target = sample_points(
            params,
            config.uniform_points,
            config.surface_points,
            config.surface_band,
            generator,
            config.part_weights,
            config.eye_points,
        )
        predicted = prior.field(params, noise)(points)
        loss = field_loss(predicted, target, config.colour_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        if average is not None:
            update_average(average, model, ema_beta(step, config.ema_half_life))
        progress = Progress(step, config.steps, loss.item(), budget.seconds)
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            last_eval = evaluate(evaluated, config.eval_heads, config.eval_resolution)
            model.train()
            progress.eval_psnr_db = last_eval["psnr_db"]
            history.append({"step": step, "loss": round(progress.loss, 6), "psnr_db": round(last_eval["psnr_db"], 3)})
            write(final=False, weights=evaluated.generator)
        if on_progress:
            on_progress(progress)
    model.eval()
    candidates = {"raw": prior} if average is None else {"averaged": evaluated, "raw": prior}
    scores = {name: evaluate(c, config.eval_heads, config.eval_resolution) for name, c in candidates.items()}
    chosen = max(scores, key=lambda name: scores[name]["psnr_db"])
    last_eval = {**scores[chosen], "weights": chosen}
    last_eval.update({f"{name}_weights_psnr_db": score["psnr_db"] for name, score in scores.items()})
    return write(final=step >= config.steps, weights=candidates[chosen].generator)
