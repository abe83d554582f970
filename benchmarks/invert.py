"""A head from one picture: held-out procedural heads inverted from one frontal picture each.

Two kinds of input, side by side, for the same heads: the analytic truth's render (a picture the
generator did not make) and the generator's own render of the head's true latent. Per kind:

- input_view_psnr_db: the inverted head against the input picture at the input view (after the
  refinement; `_encoded` before it).
- novel_view_psnr_db: the inverted head at yaw -60, -30, +30, +60 against the input's kind of
  render there (the truth's renders, or the generator's of the true latent).
- attr_top1: eye colour, hair colour, hair length and mouth (open or closed) of the inverted head,
  read as open_edit reads an edit: the value whose oracle twin (the true head with that value set,
  rendered by the prior) is nearest to the inverted head's render inside the part; heads whose
  true value is between named values (a "medium" hair length) are not counted for it.
- encode_ms (one picture to ws, 2 threads), refine_s (the whole refinement of one head),
  refine_gain_db (input-view PSNR after minus before the refinement).
A picture sheet is written to out/benchmarks/invert.png: per head, the input | the encoder's head at
yaw 0, -30, +30 | the refined head at the same | the refined head edited by the open model (blue
eyes, pink hair, open mouth) at yaw 20.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from bridge.field.renderer import render_orbit
from bridge.guidance.clip import load_clip
from bridge.images import save_png, sheet
from bridge.invert import head_from_picture
from bridge.invert.encoder import ImageEncoder
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.open_model import OpenEditModel
from bridge.prior import analytic
from bridge.prior.model import PRIOR_RENDER, HeadCode, HeadPrior
from bridge.prior.params import EYE_COLOURS, HAIR_COLOURS, MOUTH_OPEN_RANGE, describe, with_overrides
from bridge.prior.train import EVAL_SEED_BASE
from bridge.prior.views import analytic_field

FIGURES = Path("out/benchmarks")
INVERT_SEED_BASE = EVAL_SEED_BASE + 4000
NOVEL_YAWS = (-60.0, -30.0, 30.0, 60.0)
SAMPLES = 24
TWINS = {
    "eye_colour": ("eyes", {c: {"eye_colour": c} for c in EYE_COLOURS}),
    "hair_colour": ("hair", {c: {"hair_colour": c} for c in HAIR_COLOURS}),
    "hair_length": ("hair", {"short": {"hair_length": 1 / 6}, "medium": {"hair_length": 0.5}, "long": {"hair_length": 5 / 6}}),
    "mouth": ("mouth", {"closed": {"mouth_open": 0.0}, "open": {"mouth_open": sum(MOUTH_OPEN_RANGE) / 2}}),
}
"""attribute -> (the part it shows on, value -> the prior parameters of that value's twin)."""
UNNAMED = {"hair_length": ("medium",)}


def _render(field, yaw: float, resolution: int, channels=("rgb",)) -> dict:
    config = replace(PRIOR_RENDER, depth_samples=SAMPLES, importance_samples=SAMPLES)
    return render_orbit(field, config, yaw, 0.0, resolution, channels)


class Twins:
    """Per attribute, the prior's renders of one head with each value set, and the part's region:
    what an inverted head's render is read against (made once per head, for both kinds of input)."""

    def __init__(self, prior: HeadPrior, code: HeadCode, resolution: int):
        self.by_attribute = {}
        for attribute, (part, values) in TWINS.items():
            renders, regions = {}, []
            for value, changes in values.items():
                params = with_overrides(code.params, **changes)
                renders[value] = _render(prior.generator.field(prior.ws(params[None], code.noise[None])), 0.0, resolution)["rgb"][0]
                parts = _render(analytic_field(params[None], with_parts=True), 0.0, resolution, ("parts",))["parts"][0]
                regions.append(parts.argmax(dim=0) == analytic.PART_IDS[part])
            region = torch.stack(regions).any(dim=0)
            if region.sum() >= 3:
                self.by_attribute[attribute] = (renders, region)

    def read(self, seen: torch.Tensor) -> dict[str, str]:
        """A render (3, H, W) of the inverted head from the front -> the nearest twin's value per attribute."""
        out = {}
        for attribute, (renders, region) in self.by_attribute.items():
            distance = {value: float((seen - image)[:, region].square().mean()) for value, image in renders.items()}
            out[attribute] = min(distance, key=distance.get)
        return out


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).square().mean().clamp_min(1e-10)))


@torch.no_grad()
def evaluate(prior, encoder, clip, code: HeadCode, twins: Twins, kind: str, resolution: int, refine_steps: int) -> dict:
    truth_ws = prior.ws(code.params[None], code.noise[None])
    truth = analytic_field(code.params[None]) if kind == "truth" else prior.generator.field(truth_ws)
    picture = _render(truth, 0.0, resolution)["rgb"][0].clamp(0, 1)
    started = time.perf_counter()
    encoded, _ = head_from_picture(prior, encoder, picture)
    encode_ms = 1000 * (time.perf_counter() - started)
    refined, description = (
        head_from_picture(prior, encoder, picture, refine_steps=refine_steps, clip=clip) if refine_steps else (encoded, {})
    )
    novel = {yaw: _render(truth, yaw, resolution)["rgb"][0] for yaw in NOVEL_YAWS}

    def figures(ws) -> dict:
        field = prior.generator.field(ws[None])
        return {
            "input_view_psnr_db": _psnr(_render(field, 0.0, resolution)["rgb"][0], picture),
            "novel_view_psnr_db": statistics.mean(_psnr(_render(field, yaw, resolution)["rgb"][0], image) for yaw, image in novel.items()),
        }

    truth_values = {k: v for k, v in describe(code.params).items() if k in TWINS and v not in UNNAMED.get(k, ())}
    read = twins.read(_render(prior.generator.field(refined[None]), 0.0, resolution)["rgb"][0])
    return {
        "encoded": figures(encoded),
        "refined": figures(refined),
        "encode_ms": encode_ms,
        "refine_s": description.get("refine_s", 0.0),
        "attributes": {k: read.get(k) == v for k, v in truth_values.items()},
        "picture": picture,
        "views": [
            _render(prior.generator.field(ws[None]), yaw, resolution)["rgb"][0] for ws in (encoded, refined) for yaw in (0.0, -30.0, 30.0)
        ],
        "refined_ws": refined,
    }


SHEET_EDITS = (("blue eyes", "eyes"), ("pink hair", "hair"), ("open mouth", "mouth"))


def edited_views(prior, clip, ws: torch.Tensor, resolution: int) -> list[torch.Tensor]:
    """The inverted head edited by the open model with each of SHEET_EDITS, seen from yaw 20."""
    model = OpenEditModel.load(generator_sha256=prior.sha256)
    views = []
    for edit, mask in SHEET_EDITS:
        field, _ = apply_edits(prior.generator, ws[None], [EditStep(model.edit(clip, edit, mask))])
        views.append(_render(field, 20.0, resolution)["rgb"][0])
    return views


def summary(results: list[dict]) -> dict:
    mean = lambda xs: round(statistics.mean(xs), 3)  # noqa: E731
    hits = [hit for r in results for hit in r["attributes"].values()]
    per_attribute = {a: mean([float(r["attributes"][a]) for r in results if a in r["attributes"]]) for a in TWINS}
    return {
        "input_view_psnr_db": mean([r["refined"]["input_view_psnr_db"] for r in results]),
        "input_view_psnr_db_encoded": mean([r["encoded"]["input_view_psnr_db"] for r in results]),
        "novel_view_psnr_db": mean([r["refined"]["novel_view_psnr_db"] for r in results]),
        "novel_view_psnr_db_encoded": mean([r["encoded"]["novel_view_psnr_db"] for r in results]),
        "attr_top1": mean([float(h) for h in hits]),
        "attr_top1_per_attribute": per_attribute,
        "refine_gain_db": mean([r["refined"]["input_view_psnr_db"] - r["encoded"]["input_view_psnr_db"] for r in results]),
        "refine_s": mean([r["refine_s"] for r in results]),
    }


def run(quick: bool = False, encoder_folder: Path | None = None) -> dict:
    prior = HeadPrior.load()
    encoder = ImageEncoder.load(encoder_folder, prior.sha256) if encoder_folder else ImageEncoder.load(generator_sha256=prior.sha256)
    clip = load_clip("bundled")
    heads, resolution, refine_steps = (3, 48, 4) if quick else (30, 64, 20)
    out, pictures = {}, []
    codes = [HeadCode.from_seed(INVERT_SEED_BASE + index) for index in range(heads)]
    with torch.no_grad():
        twins = [Twins(prior, code, resolution) for code in codes]
    for kind in ("truth", "generator"):
        results = []
        for index in range(heads):
            result = evaluate(prior, encoder, clip, codes[index], twins[index], kind, resolution, refine_steps)
            results.append(result)
            print(f"{kind} head {index + 1}/{heads}: {result['refined']} {result['attributes']}", file=sys.stderr, flush=True)
            if index < 4 and kind == "truth":
                with torch.no_grad():
                    edits = edited_views(prior, clip, result["refined_ws"], resolution)
                pictures.append(sheet([result["picture"], *result["views"], *edits], columns=10))
        out[kind] = summary(results)
        out[kind]["encode_ms"] = round(statistics.median(r["encode_ms"] for r in results), 1)
    grid = save_png(sheet(pictures, columns=1), FIGURES / "invert.png")
    return {
        **{
            k: out["truth"][k] for k in ("input_view_psnr_db", "novel_view_psnr_db", "attr_top1", "encode_ms", "refine_s", "refine_gain_db")
        },
        "truth_pictures": out["truth"],
        "generator_pictures": out["generator"],
        "heads": heads,
        "resolution": resolution,
        "refine_steps": refine_steps,
        "novel_yaws": list(NOVEL_YAWS),
        "picture_sheet": str(grid),
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }
