"""Quality of the shipped edits on held-out prior heads (LENeRF Table 1, measured with ground truth).

For every valid module in the bundled edit library, over `heads` held-out heads and two views:

- psnr_out_db: source vs edited render outside the ground-truth region of the mask part (dilated
  by one pixel: the renders' soft borders are not an edit), as LENeRF's Table 1 does with a face
  parser; psnr_out_db_no_afn the same for the mapper alone (the target head, the paper's
  "w/o AFN" row).
- mask_iou_3d: the attention field thresholded at 0.5 against the ground-truth part, on points in
  the visible shell of the analytic head (|sdf| < 0.02).
- edit_success: the fraction of heads (not already showing the result) whose ground-truth region
  moved to the prompt: the iris / hair colour nearest the prompt's palette colour, or the mouth
  opened by at least half of what the analytic heads' closed -> open (0.6) step opens it.
- apply_ms (apply + render one 128^2 view), grid_s_128, grid_s_256 (edited FieldGrid).

The worst module's figures are at the top level (min_*).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from bridge.field.grid import sample_grid
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import EditLibrary, EditModule
from bridge.prior import analytic
from bridge.prior.model import PRIOR_RENDER, SURFACE_LEVEL, HeadCode, HeadPrior
from bridge.prior.params import EYE_COLOURS, HAIR_COLOURS, PARAM_INDEX, with_overrides
from bridge.prior.train import EVAL_SEED_BASE, sample_points
from bridge.prior.views import analytic_field, render

SEED_BASE = EVAL_SEED_BASE + 2000
VIEWS = ((-20.0, 0.0), (20.0, 0.0))
PALETTES = {"eyes": EYE_COLOURS, "hair": HAIR_COLOURS}


def _chromaticity(rgb: torch.Tensor) -> torch.Tensor:
    return rgb / rgb.sum(dim=-1, keepdim=True).clamp_min(1e-4)


def region_colour(image: torch.Tensor, region: torch.Tensor, saturated_fraction: float = 0.3) -> torch.Tensor | None:
    """Mean chromaticity of the most saturated pixels of `region` (an eye is mostly white sclera)."""
    pixels = image.permute(1, 2, 0)[region]
    if pixels.shape[0] < 3:
        return None
    saturation = pixels.max(dim=-1).values - pixels.min(dim=-1).values
    keep = saturation.topk(max(1, int(saturated_fraction * len(pixels)))).indices
    return _chromaticity(pixels[keep].mean(dim=0))


def nearest_colour(chromaticity: torch.Tensor, palette: dict) -> str:
    names = list(palette)
    colours = _chromaticity(torch.tensor([palette[n] for n in names]))
    return names[int((colours - chromaticity).square().sum(-1).argmin())]


def _part_of(module: EditModule) -> str:
    mask = module.spec.mask.lower()
    for part in analytic.PART_NAMES[1:]:
        if part in mask or part.rstrip("s") in mask:
            return part
    return mask


def _psnr_outside(a: torch.Tensor, b: torch.Tensor, outside: torch.Tensor) -> float:
    weight = outside.float()[:, None]
    mse = ((a - b).square() * weight).sum() / (3 * weight.sum()).clamp_min(1)
    return float(-10 * torch.log10(mse.clamp_min(1e-10)))


@torch.no_grad()
def evaluate_module(prior: HeadPrior, module: EditModule, heads: int, resolution: int) -> dict:
    part = _part_of(module)
    part_id = analytic.PART_IDS[part]
    words = module.spec.edit.lower().split()
    palette = PALETTES.get(part, {})
    colour = next((w for w in words if w in palette), None)
    opening = "open" in words and part == "mouth"
    psnr_out, psnr_no_afn, ious, successes = [], [], [], []
    for index in range(heads):
        code = HeadCode.from_seed(SEED_BASE + index)
        ws = prior.ws(code.params[None], code.noise[None])
        edited, ws_target = apply_edits(prior.generator, ws, [EditStep(module)])
        source, target = prior.generator.field(ws), prior.generator.field(ws_target)
        for yaw, pitch in VIEWS:
            a = render(source, prior.render_config, yaw, pitch, resolution, channels=("rgb",))["rgb"]
            b = render(edited, prior.render_config, yaw, pitch, resolution, channels=("rgb",))["rgb"]
            c = render(target, prior.render_config, yaw, pitch, resolution, channels=("rgb",))["rgb"]
            parts = render(analytic_field(code.params[None], with_parts=True), PRIOR_RENDER, yaw, pitch, resolution, channels=("parts",))["parts"]
            region = parts.argmax(dim=1) == part_id
            dilated = F.max_pool2d(region.float()[:, None], 3, 1, 1)[:, 0] > 0
            psnr_out.append(_psnr_outside(a, b, ~dilated))
            psnr_no_afn.append(_psnr_outside(a, c, ~dilated))
            if colour and yaw == VIEWS[0][0]:
                before, after = region_colour(a[0], region[0]), region_colour(b[0], region[0])
                if before is not None and after is not None and nearest_colour(before, palette) != colour:
                    successes.append(nearest_colour(after, palette) == colour)
        points, truth = sample_points(code.params[None], 2048, 8192, 0.02, torch.Generator().manual_seed(index))
        shell = truth["sdf"][0, :, 0].abs() < 0.02
        labels = analytic.query(points, code.params[None])["label"][0]
        mask = edited(points)["mask"][0, :, 0] > 0.5
        gt = labels == part_id
        ious.append(float((mask & gt & shell).sum() / ((mask | gt) & shell).sum().clamp_min(1)))
        if opening and float(code.params[PARAM_INDEX["mouth_open"]]) == 0.0:
            successes.append(_mouth_opened(prior, code, edited, resolution))
    return {
        "part": part,
        "psnr_out_db": round(sum(psnr_out) / len(psnr_out), 3),
        "psnr_out_db_no_afn": round(sum(psnr_no_afn) / len(psnr_no_afn), 3),
        "mask_iou_3d": round(sum(ious) / len(ious), 4),
        "edit_success": round(sum(successes) / len(successes), 4) if successes else None,
        "edit_success_heads": len(successes),
    }


def _mouth_opened(prior: HeadPrior, code: HeadCode, edited, resolution: int) -> bool:
    """Mean depth over the mouth region from the front grew by >= half the analytic closed -> open step."""
    params = code.params[None]
    parts = render(analytic_field(params, with_parts=True), PRIOR_RENDER, 0.0, 0.0, resolution, channels=("parts",))["parts"]
    region = F.max_pool2d((parts.argmax(dim=1) == analytic.PART_IDS["mouth"]).float()[:, None], 5, 1, 2)[:, 0] > 0
    if region.sum() < 3:
        return False

    def depth(field, config) -> float:
        return float(render(field, config, 0.0, 0.0, resolution, channels=())["depth"][:, 0][region].mean())

    opened = with_overrides(code.params, mouth_open=0.6)[None]
    wanted = depth(analytic_field(opened), PRIOR_RENDER) - depth(analytic_field(params), PRIOR_RENDER)
    source = prior.generator.field(prior.ws(params, code.noise[None]))
    got = depth(edited, prior.render_config) - depth(source, prior.render_config)
    return got >= 0.5 * wanted


def _timings(prior: HeadPrior, module: EditModule, quick: bool) -> dict:
    code = HeadCode.from_seed(SEED_BASE)
    with torch.no_grad():
        started = time.perf_counter()
        ws = prior.ws(code.params[None], code.noise[None])
        edited, _ = apply_edits(prior.generator, ws, [EditStep(module)])
        render(edited, prior.render_config, 20.0, 0.0, 128)
        apply_ms = 1000 * (time.perf_counter() - started)
        times = {"apply_ms": round(apply_ms, 1)}
        for resolution in (128,) if quick else (128, 256):
            started = time.perf_counter()
            sample_grid(edited, resolution, SURFACE_LEVEL, prior.render_config.box_size)
            times[f"grid_s_{resolution}"] = round(time.perf_counter() - started, 2)
    return times


def run(quick: bool = False) -> dict:
    prior = HeadPrior.load()
    library = EditLibrary(generator_sha256=prior.sha256)
    entries = [e for e in library.entries() if e.problem is None]
    if not entries:
        return {"modules": {}, "note": "no edit modules for this generator in the bundled library", "quick": quick}
    heads, resolution = (6, 64) if quick else (50, 96)
    modules = {}
    for entry in entries:
        module = library.load(entry.name)
        modules[entry.name] = {**evaluate_module(prior, module, heads, resolution), **_timings(prior, module, quick)}
    figures = list(modules.values())
    successes = [m["edit_success"] for m in figures if m["edit_success"] is not None]
    return {
        "min_psnr_out_db": min(m["psnr_out_db"] for m in figures),
        "min_psnr_gain_over_no_afn_db": round(min(m["psnr_out_db"] - m["psnr_out_db_no_afn"] for m in figures), 3),
        "min_mask_iou_3d": min(m["mask_iou_3d"] for m in figures),
        "min_edit_success": min(successes) if successes else None,
        "modules": modules,
        "heads": heads,
        "resolution": resolution,
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }
