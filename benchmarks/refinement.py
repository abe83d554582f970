"""Refining a prompt the open model does badly: minutes of `train-edit` until edit_success >= 0.8,
starting from the open model's edit (`--from-open-model`) against starting from scratch.

One pair (green eyes on the eyes: the open model's weakest eye colour that a module can learn).
Both runs are the real command, in turns of SEGMENT_MINUTES each (the command resumes from its
checkpoint), so they share the machine alike; after every turn the module written so far is scored
the way `benchmarks.open_edit` scores the open model (edit_success against the prior's twin of each
held-out head, two views), and the open model itself is scored at minute 0. `minutes` counts the
commands' whole wall clock (loading, the open model's distillation, training, writing).

Figures: per run the curve [(minutes, step, edit_success, psnr_out_db)], `minutes_to_0_8` (None if
not reached within MAX_MINUTES), and `open_model` (the open model's own figures on the same heads).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.open_edit import HeadCase, evaluate_pair
from bridge.guidance.clip import load_clip
from bridge.lenerf.edit_module import EditModule
from bridge.lenerf.open_model import OpenEditModel
from bridge.prior.model import HeadPrior

OUT = Path("out/benchmarks/refinement")
PAIR = ("green eyes", "eyes", "eye_colour", "green")
SEGMENT_MINUTES = 5.0
MAX_MINUTES = 30.0
HEADS, RESOLUTION = 16, 48
TARGET = 0.8


def _train(folder: Path, minutes: float, from_open_model: bool) -> tuple[float, int, bool]:
    """One turn of `python -m bridge train-edit` -> (wall seconds, the step it reached, whether the
    run has done all its steps: the module is then final, and the run takes no more turns)."""
    edit, mask = PAIR[:2]
    command = [sys.executable, "-m", "bridge", "train-edit", "--edit", edit, "--mask", mask, "--out", str(folder)]
    command += ["--minutes", f"{minutes:g}", "--threads", "2"] + (["--from-open-model"] if from_open_model else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"train-edit failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    reached = [(int(step), int(total)) for step, total in re.findall(r"step (\d+)/(\d+)", done.stdout)]
    step, total = max(reached, default=(0, 1))
    return time.perf_counter() - started, step, step >= total


def run(quick: bool = False) -> dict:
    shutil.rmtree(OUT, ignore_errors=True)  # a measurement from the start, not a resume of an earlier one
    prior = HeadPrior.load()
    segment, limit = (0.5, 1.0) if quick else (SEGMENT_MINUTES, MAX_MINUTES)
    heads = 4 if quick else HEADS
    cases = [HeadCase(prior, i, RESOLUTION) for i in range(heads)]
    edit, mask, attribute, value = PAIR
    model = OpenEditModel.load(generator_sha256=prior.sha256)
    open_figures = evaluate_pair(prior, model.edit(load_clip("bundled"), edit, mask), cases, attribute, value, RESOLUTION)
    print(f"open model: {open_figures}", file=sys.stderr, flush=True)
    runs = {name: {"curve": [], "minutes": 0.0, "finished": False} for name in ("scratch", "from_open_model")}
    while any(r["minutes"] < limit and not r["finished"] for r in runs.values()):
        for name, state in runs.items():
            if state["minutes"] >= limit or state["finished"]:
                continue
            folder = OUT / name
            seconds, step, state["finished"] = _train(folder, segment, name == "from_open_model")
            state["minutes"] += seconds / 60
            module = EditModule.load(folder, prior.sha256)
            figures = evaluate_pair(prior, module, cases, attribute, value, RESOLUTION)
            point = (round(state["minutes"], 2), step, figures["edit_success"], figures["psnr_out_db"])
            state["curve"].append(point)
            print(f"{name}: {point}", file=sys.stderr, flush=True)
    out: dict = {"pair": f"{edit} | {mask}", "heads": heads, "open_model": open_figures}
    for name, state in runs.items():
        reached = [minutes for minutes, _, success, _ in state["curve"] if success is not None and success >= TARGET]
        out[name] = {"curve": state["curve"], "minutes_to_0_8": reached[0] if reached else None, "finished": state["finished"]}
    return out
