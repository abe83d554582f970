"""The open-vocabulary edit model on held-out prior heads: many prompt pairs, none trained for.

For every pair (an edit prompt and a mask prompt, in several wordings, over the caption attributes
of `bridge.guidance.captions`), on `heads` held-out heads and two views:

- edit_success: of the heads that do not already have the prompt's attribute value, the share whose
  edited render moved at least half-way to the truth inside the part: closer to the prior's own
  twin of the head with that value set (the oracle) than to the source, over the part's region
  before or after the edit. One criterion for every attribute, colours and shapes alike.
- psnr_out_db (source vs edited outside the dilated region), psnr_out_db_no_afn (the same for the
  mapper alone, the paper's "w/o AFN"), and their difference psnr_gain_over_no_afn_db.
- mask_iou_3d: the mask thresholded at 0.5 against the ground-truth part volume on the head's outer
  0.02 of matter (`edit_quality.part_iou_3d`), for the part before or after the edit.
- heldout: true for every pair: the model never saw an edit prompt in training (it is trained on
  image-embedding differences of random heads, `bridge.lenerf.open_trainer`).

Summary: heldout_success_frac (share of held-out pairs with edit_success >= 0.8), min_psnr_out_db
and min_psnr_gain_over_no_afn_db over the pairs on eyes, hair and mouth, mask_iou_3d per part,
prompt_ms (a new prompt to an edit ready to sample: text encoding, the mapper, the query and the
target planes, warm process), instruction_top1 (sentences parsed into the intended pair), and
vs_modules: the open model beside each shipped module, same heads, same figures.
A picture grid (prompts x heads, the mask beside each) is written to out/benchmarks/open_edit_grid.png.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.edit_quality import SEED_BASE, _psnr_outside, part_iou_3d
from bridge.field.renderer import render_orbit
from bridge.guidance.clip import load_clip
from bridge.guidance.instructions import parse_instruction
from bridge.images import overlay, save_png, sheet
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import EditLibrary
from bridge.lenerf.open_model import OpenEditModel
from bridge.prior import analytic
from bridge.prior.model import PRIOR_RENDER, HeadCode, HeadPrior
from bridge.prior.params import describe, with_overrides
from bridge.prior.train import sample_points
from bridge.prior.views import analytic_field

FIGURES = Path("out/benchmarks")
OPEN_SEED_BASE = SEED_BASE + 500
VIEWS = ((-20.0, 0.0), (20.0, 0.0))
GEOMETRY_ATTRIBUTES = ("hair_length", "mouth", "nose", "ears", "eyes", "jaw")
"""Attributes that change the shape: their region is the part before or after the edit."""
VALUES = (
    {("eye_colour", c): {"eye_colour": c} for c in ("green", "blue", "amber", "grey", "brown", "hazel")}
    | {("hair_colour", c): {"hair_colour": c} for c in ("red", "pink", "blonde", "blue", "black", "green", "grey")}
    | {
        ("hair_length", "long"): {"hair_length": 1.0},
        ("hair_length", "short"): {"hair_length": 0.0},
        ("mouth", "open"): {"mouth_open": 0.6},
        ("mouth", "closed"): {"mouth_open": 0.0},
        ("nose", "big"): {"nose_size": 1.6},
        ("nose", "small"): {"nose_size": 0.7},
        ("skin_tone", "dark"): {"skin_tone": 1.0},
        ("skin_tone", "light"): {"skin_tone": 0.0},
        ("lips", "red"): {"lip_redness": 1.0},
        ("eyebrows", "thick"): {"eyebrow_thickness": 1.0},
        ("ears", "big"): {"ear_size": 1.3},
        ("eyes", "big"): {"eye_size": 1.25},
        ("jaw", "square"): {"jaw_width": 1.0},
    }
)
"""(attribute, value) -> the prior parameters of the oracle twin."""
REGION_PART = {
    "eye_colour": "eyes",
    "eyes": "eyes",
    "hair_colour": "hair",
    "hair_length": "hair",
    "mouth": "mouth",
    "lips": "mouth",
    "nose": "nose",
    "skin_tone": "skin",
    "eyebrows": "eyebrows",
    "ears": "ears",
    "jaw": "skin",
}
PAIRS = (
    ("green eyes", "eyes", "eye_colour", "green"),
    ("blue irises", "irises", "eye_colour", "blue"),
    ("amber eyes", "the eyes", "eye_colour", "amber"),
    ("grey eyes", "eyes", "eye_colour", "grey"),
    ("blue eyes", "eyes", "eye_colour", "blue"),
    ("red hair", "hair", "hair_colour", "red"),
    ("pink hair", "the hair", "hair_colour", "pink"),
    ("blond hair", "hair", "hair_colour", "blonde"),
    ("blue hair", "hairstyle", "hair_colour", "blue"),
    ("black hair", "hair", "hair_colour", "black"),
    ("long hair", "hair", "hair_length", "long"),
    ("a short haircut", "hair", "hair_length", "short"),
    ("open mouth", "mouth", "mouth", "open"),
    ("a wide open mouth", "the mouth", "mouth", "open"),
    ("closed lips", "mouth", "mouth", "closed"),
    ("a big nose", "nose", "nose", "big"),
    ("a tiny nose", "the nose", "nose", "small"),
    ("dark skin", "skin", "skin_tone", "dark"),
    ("pale skin", "skin", "skin_tone", "light"),
    ("red lips", "lips", "lips", "red"),
    ("bright red lips", "mouth", "lips", "red"),
    ("thick eyebrows", "eyebrows", "eyebrows", "thick"),
    ("bushy eyebrows", "brows", "eyebrows", "thick"),
    ("big ears", "ears", "ears", "big"),
    ("large eyes", "eyes", "eyes", "big"),
    ("a square jaw", "jaw", "jaw", "square"),
)
COLOUR_WORDINGS = (
    ("crimson hair", "hair", "hair_colour", "red"),
    ("ginger hair", "hair", "hair_colour", "red"),
    ("golden hair", "hair", "hair_colour", "blonde"),
    ("platinum blonde hair", "hair", "hair_colour", "blonde"),
    ("silver hair", "hair", "hair_colour", "grey"),
    ("jet black hair", "hair", "hair_colour", "black"),
    ("navy blue hair", "hair", "hair_colour", "blue"),
    ("chocolate eyes", "eyes", "eye_colour", "brown"),
    ("sapphire eyes", "eyes", "eye_colour", "blue"),
    ("golden eyes", "eyes", "eye_colour", "amber"),
)
"""Colour words the bundled CLIP's captions do not use, each with the value its caption word names
(`bridge.guidance.colours`): measured read as typed and read through the caption words."""
SHIPPED = {
    "blue_eyes": ("blue eyes", "eyes", "eye_colour", "blue"),
    "red_hair": ("red hair", "hair", "hair_colour", "red"),
    "open_mouth": ("open mouth", "mouth", "mouth", "open"),
}
INSTRUCTIONS = (
    ("make the eyes green", "green eyes", "eyes"),
    ("give her pink hair", "pink hair", "hair"),
    ("open the mouth wide", "wide open mouth", "mouth"),
    ("turn his hair red", "red hair", "hair"),
    ("change the eye colour to blue", "blue eyes", "eyes"),
    ("I want blonde hair", "blonde hair", "hair"),
    ("please make her lips red", "red lips", "mouth"),
    ("make the nose bigger", "bigger nose", "nose"),
    ("give him a big nose", "big nose", "nose"),
    ("close the mouth", "closed mouth", "mouth"),
    ("dye the hair blue", "blue hair", "hair"),
    ("can you make the irises amber", "amber irises", "eyes"),
    ("paint the lips bright red", "bright red lips", "mouth"),
    ("make the skin darker", "darker skin", "skin"),
    ("she should have grey eyes", "grey eyes", "eyes"),
    ("give the tall man short hair", "short hair", "hair"),
    ("the old woman should have green eyes", "green eyes", "eyes"),
    ("shave the beard off", "clean-shaven jaw", "jaw"),
    ("make the hair #ff0000", "red hair", "hair"),
    ("change the hair colour from brown to black", "black hair", "hair"),
    ("make the mouth smile", "smiling mouth", "mouth"),
    ("give them long hair", "long hair", "hair"),
    ("lengthen the hair", "long hair", "hair"),
    ("shorten her hair", "short hair", "hair"),
    ("make his eyebrows thicker", "thicker eyebrows", "eyebrows"),
    ("bushy eyebrows please", "bushy eyebrows", "eyebrows"),
    ("make the ears bigger", "bigger ears", "ears"),
    ("give her large ears", "large ears", "ears"),
    ("a square jaw", "square jaw", "jaw"),
    ("make the chin pointed", "pointed chin", "jaw"),
    ("turn the eyes brown", "brown eyes", "eyes"),
    ("i'd like green hair", "green hair", "hair"),
    ("change her hair to black", "black hair", "hair"),
    ("could you give him a wide open mouth", "wide open mouth", "mouth"),
    ("make her complexion pale", "pale complexion", "skin"),
    ("hazel eyes", "hazel eyes", "eyes"),
    ("the hair should be grey", "grey hair", "hair"),
    ("open his mouth", "open mouth", "mouth"),
    ("make the pupils blue", "blue pupils", "eyes"),
    ("give her a tiny nose", "tiny nose", "nose"),
    ("make the face darker", "darker face", "skin"),
    ("recolour the hairstyle pink", "pink hairstyle", "hair"),
    ("I'd love red lips on her", "red lips", "mouth"),
    ("make the eyeballs bigger", "bigger eyeballs", "eyes"),
    ("make her fringe blonde", "blonde fringe", "hair"),
    ("thin eyebrows", "thin eyebrows", "eyebrows"),
    ("her brows should be thick", "thick brows", "eyebrows"),
    ("widen the jaw", "wide jaw", "jaw"),
    ("give the woman violet eyes", "violet eyes", "eyes"),
    ("make the man's hair silver", "silver hair", "hair"),
    ("I'd like the character’s lips to be pink", "pink lips", "mouth"),
    ("make her smile", "smiling mouth", "mouth"),
    ("straighten the guy's hair", "straight hair", "hair"),
    ("change his eye colour to hazel", "hazel eyes", "eyes"),
    ("turn the avatar's hair curly", "curly hair", "hair"),
    ("red lipstick on the model", "red lipstick lips", "mouth"),
)
"""(sentence, intended edit, intended part). The pair counts as right when the part is the intended
one and the edit has exactly the intended words (in any order): a word left over from the sentence
("woman blue eyes") is a miss."""


SAMPLES = 24
"""Stratified and importance samples per ray of every render here (half the prior's): the same for
source, edited, mapper-alone and twin renders, at a quarter of the cost."""


def _regions(params: torch.Tensor, resolution: int) -> list[torch.Tensor]:
    """Per view: the part ids (H, W) of the analytic head."""
    field = analytic_field(params[None], with_parts=True)
    config = replace(PRIOR_RENDER, depth_samples=SAMPLES, importance_samples=SAMPLES)
    return [render_orbit(field, config, yaw, pitch, resolution, channels=("parts",))["parts"].argmax(dim=1)[0] for yaw, pitch in VIEWS]


def _renders(field, prior: HeadPrior, resolution: int) -> list[torch.Tensor]:
    config = replace(prior.render_config, depth_samples=SAMPLES, importance_samples=SAMPLES)
    return [render_orbit(field, config, yaw, pitch, resolution, channels=("rgb",))["rgb"] for yaw, pitch in VIEWS]


class HeadCase:
    """One held-out head with what every pair reuses: ws, renders, part maps, surface points."""

    def __init__(self, prior: HeadPrior, index: int, resolution: int):
        self.code = HeadCode.from_seed(OPEN_SEED_BASE + index)
        self.attributes = describe(self.code.params)
        self.ws = prior.ws(self.code.params[None], self.code.noise[None])
        self.renders = _renders(prior.generator.field(self.ws), prior, resolution)
        self.parts = _regions(self.code.params, resolution)
        self.points, truth = sample_points(self.code.params[None], 2048, 8192, 0.02, torch.Generator().manual_seed(index))
        self.sdf = truth["sdf"][0, :, 0]
        self.labels = analytic.query(self.points, self.code.params[None])["label"][0]


@torch.no_grad()
def evaluate_pair(prior: HeadPrior, module, cases: list[HeadCase], attribute: str, value: str, resolution: int) -> dict:
    part_id = analytic.PART_IDS[REGION_PART[attribute]]
    changes = VALUES[(attribute, value)]
    psnr_out, psnr_no_afn, ious, successes = [], [], [], []
    for case in cases:
        edited, ws_target = apply_edits(prior.generator, case.ws, [EditStep(module)])
        twin_params = with_overrides(case.code.params, **changes)
        twin_parts = _regions(twin_params, resolution) if attribute in GEOMETRY_ATTRIBUTES else case.parts
        after = _renders(edited, prior, resolution)
        target = _renders(prior.generator.field(ws_target), prior, resolution)
        twin = None
        if case.attributes.get(attribute) != value:
            twin = _renders(prior.generator.field(prior.ws(twin_params[None], case.code.noise[None])), prior, resolution)
        to_twin = to_source = 0.0
        for v in range(len(VIEWS)):
            region = (case.parts[v] == part_id) | (twin_parts[v] == part_id)
            dilated = F.max_pool2d(region[None, None].float(), 3, 1, 1)[0] > 0
            psnr_out.append(_psnr_outside(case.renders[v], after[v], ~dilated))
            psnr_no_afn.append(_psnr_outside(case.renders[v], target[v], ~dilated))
            if twin is not None:
                inside = region[None, None].expand_as(after[v])
                to_twin += float((after[v] - twin[v])[inside].square().sum())
                to_source += float((after[v] - case.renders[v])[inside].square().sum())
        if twin is not None and to_twin + to_source > 0:
            successes.append(to_twin < to_source)
        mask = edited(case.points)["mask"][0, :, 0] > 0.5
        gt = case.labels == part_id
        if attribute in GEOMETRY_ATTRIBUTES:
            gt = gt | (analytic.query(case.points, twin_params[None])["label"][0] == part_id)
        ious.append(part_iou_3d(mask, gt, case.sdf)[0])
    mean = lambda xs: round(sum(xs) / len(xs), 3) if xs else None  # noqa: E731
    out = {
        "part": REGION_PART[attribute],
        "attribute": attribute,
        "value": value,
        "psnr_out_db": mean(psnr_out),
        "psnr_out_db_no_afn": mean(psnr_no_afn),
        "mask_iou_3d": mean(ious),
        "edit_success": mean([float(s) for s in successes]),
        "edit_success_heads": len(successes),
    }
    out["psnr_gain_over_no_afn_db"] = round(out["psnr_out_db"] - out["psnr_out_db_no_afn"], 3)
    return out


def instruction_figures(clip) -> dict:
    right, wrong = 0, []
    for sentence, edit, part in INSTRUCTIONS:
        try:
            parsed = parse_instruction(sentence, clip)
            ok = parsed.part == part and set(edit.split()) == set(parsed.edit.split())
        except Exception:  # noqa: BLE001 -- a refusal is a miss
            parsed, ok = None, False
        right += ok
        if not ok:
            wrong.append({"sentence": sentence, "parsed": parsed.as_dict() if parsed else None})
    return {"instruction_top1": round(right / len(INSTRUCTIONS), 3), "instructions": len(INSTRUCTIONS), "instruction_misses": wrong}


@torch.no_grad()
def prompt_ms(prior: HeadPrior, model: OpenEditModel, clip, repeats: int = 5) -> float:
    """A prompt never seen before to an edit ready to sample (planes of source and target computed)."""
    code = HeadCode.from_seed(OPEN_SEED_BASE)
    ws = prior.ws(code.params[None], code.noise[None])
    times = []
    for i in range(repeats + 1):
        started = time.perf_counter()
        edit = model.edit(clip, f"{['teal', 'violet', 'golden', 'silver', 'orange', 'white'][i]} eyes", "eyes")
        field, _ = apply_edits(prior.generator, ws, [EditStep(edit)])
        times.append(1000 * (time.perf_counter() - started))
    return round(sorted(times[1:])[len(times[1:]) // 2], 1)


@torch.no_grad()
def picture_grid(prior: HeadPrior, model: OpenEditModel, clip, path: Path, heads: int = 4, resolution: int = 96) -> Path:
    """Rows: prompt pairs; columns: per head the source, the edited head and its mask over it."""
    chosen = [p for p in PAIRS if p[2] in ("eye_colour", "hair_colour", "mouth", "hair_length", "skin_tone", "lips", "nose", "eyebrows")][
        ::2
    ]
    rows = []
    for edit, mask, _, _ in chosen:
        prompt = model.edit(clip, edit, mask)
        cells = []
        for index in range(heads):
            code = HeadCode.from_seed(OPEN_SEED_BASE + index)
            ws = prior.ws(code.params[None], code.noise[None])
            field, edited_ws = apply_edits(prior.generator, ws, [EditStep(prompt)])
            before = prior.view(prior.generator.field(ws), ws, 20.0, resolution)["rgb"][0]
            after = prior.view(field, edited_ws, 20.0, resolution, ("rgb", "mask"))
            cells += [before, after["rgb"][0], overlay(after["rgb"][0], after["mask"][0, 0].clamp(0, 1))]
        rows.append(sheet(cells, columns=len(cells)))
    return save_png(sheet(rows, columns=1), path)


def run(quick: bool = False, model_folder: Path | None = None) -> dict:
    prior = HeadPrior.load()
    clip = load_clip("bundled")
    model = OpenEditModel.load(model_folder, prior.sha256) if model_folder else OpenEditModel.load(generator_sha256=prior.sha256)
    heads, resolution = (4, 32) if quick else (30, 48)
    cases = [HeadCase(prior, i, resolution) for i in range(heads)]
    pairs = {}
    chosen = PAIRS[:6] if quick else PAIRS
    for n, (edit, mask, attribute, value) in enumerate(chosen):
        figures = evaluate_pair(prior, model.edit(clip, edit, mask), cases, attribute, value, resolution)
        pairs[f"{edit} | {mask}"] = {**figures, "heldout": True}
        print(f"pair {n + 1}/{len(chosen)} {edit!r} on {mask!r}: {figures}", file=sys.stderr, flush=True)
    library = EditLibrary(generator_sha256=prior.sha256)
    vs_modules = {}
    for name, (edit, mask, attribute, value) in SHIPPED.items():
        if quick:
            break
        same = pairs.get(f"{edit} | {mask}") or evaluate_pair(prior, model.edit(clip, edit, mask), cases, attribute, value, resolution)
        vs_modules[name] = {
            "module": evaluate_pair(prior, library.load(name), cases, attribute, value, resolution),
            "open_model": {k: v for k, v in same.items() if k != "heldout"},
        }
    figures = list(pairs.values())
    main = [f for f in figures if f["part"] in ("eyes", "hair", "mouth")]
    successes = [f["edit_success"] for f in figures if f["heldout"] and f["edit_success"] is not None]
    parts = {}
    for f in figures:
        parts.setdefault(f["part"], []).append(f["mask_iou_3d"])
    grid = picture_grid(prior, model, clip, FIGURES / "open_edit_grid.png", heads=2 if quick else 4)
    return {
        "prompts": len(figures),
        "attributes": len({f["attribute"] for f in figures}),
        "heldout_success_frac": round(sum(s >= 0.8 for s in successes) / max(len(successes), 1), 3),
        "mean_edit_success": round(sum(successes) / max(len(successes), 1), 3),
        "min_psnr_out_db": min(f["psnr_out_db"] for f in main),
        "min_psnr_gain_over_no_afn_db": min(f["psnr_gain_over_no_afn_db"] for f in main),
        "mask_iou_3d": {part: round(sum(v) / len(v), 3) for part, v in parts.items()},
        "prompt_ms": prompt_ms(prior, model, clip),
        **instruction_figures(clip),
        "vs_modules": vs_modules,
        "pairs": pairs,
        "heads": heads,
        "views": len(VIEWS),
        "resolution": resolution,
        "picture_grid": str(grid),
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }


def subset(heads: int, edits: list[str], model_folder: Path | None = None, resolution: int = 48) -> dict:
    """The pairs whose edit prompt is in `edits`, on the first `heads` held-out heads: a quicker
    look than `run` (python -m benchmarks.open_edit --heads 8 --edit "blue eyes" --edit "red hair")."""
    prior = HeadPrior.load()
    clip = load_clip("bundled")
    model = OpenEditModel.load(model_folder, prior.sha256) if model_folder else OpenEditModel.load(generator_sha256=prior.sha256)
    cases = [HeadCase(prior, i, resolution) for i in range(heads)]
    return {
        f"{edit} | {mask}": evaluate_pair(prior, model.edit(clip, edit, mask), cases, attribute, value, resolution)
        for edit, mask, attribute, value in PAIRS
        if edit in edits
    }


def colour_wordings(heads: int, resolution: int = 48) -> dict:
    """COLOUR_WORDINGS on the first `heads` held-out heads, read as typed (a CLIP that was not
    trained on the captions reads them so) and through the caption words, same heads, same run."""
    import copy

    prior = HeadPrior.load()
    clip = load_clip("bundled")
    as_typed = copy.copy(clip)
    as_typed.taught_by_captions = False
    model = OpenEditModel.load(generator_sha256=prior.sha256)
    cases = [HeadCase(prior, i, resolution) for i in range(heads)]
    out = {}
    for edit, mask, attribute, value in COLOUR_WORDINGS:
        read = model.edit(clip, edit, mask)
        out[f"{edit} | {mask}"] = {
            "read_as": read.spec.edit,
            "as_typed": evaluate_pair(prior, model.edit(as_typed, edit, mask), cases, attribute, value, resolution),
            "read": evaluate_pair(prior, read, cases, attribute, value, resolution),
        }
        print(
            edit,
            {k: (v["edit_success"], v["psnr_out_db"]) if isinstance(v, dict) else v for k, v in out[f"{edit} | {mask}"].items()},
            file=sys.stderr,
            flush=True,
        )
    success = {way: [f[way]["edit_success"] for f in out.values() if f[way]["edit_success"] is not None] for way in ("as_typed", "read")}
    summary = {f"success_frac_{way}": round(sum(s >= 0.8 for s in v) / max(len(v), 1), 3) for way, v in success.items()}
    return {**summary, "heads": heads, "pairs": out}


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.open_edit")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--edit", action="append", help="an edit prompt of PAIRS; repeat")
    parser.add_argument("--colour-wordings", action="store_true", help="COLOUR_WORDINGS as typed and read through the caption words")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    if args.colour_wordings:
        print(json.dumps(colour_wordings(args.heads)))
    elif args.edit:
        print(json.dumps(subset(args.heads, args.edit, args.model)))
    else:
        parser.error("give --edit PROMPT (repeat) or --colour-wordings")
