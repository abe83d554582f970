"""Training recipes: the settings a new edit starts from, chosen by where it edits and how.

LENeRF's defaults (`EditTrainingConfig`, the contrastive CLIP loss) leave every shipped edit short
of its target on the bundled prior (docs/lenerf.md, "What the first trials taught"): an edit must
move w far, so its residual cost is lighter and its CLIP loss is the global one; the small CLIP
finds the eyes relevant for any mask prompt, so a neutral prompt's relevance is taken off every
non-eye mask; hair is mostly seen from the side and back; a closed mouth is only found once
opened. `recipe_for` turns those findings into the options of a new edit with the same part and
kind, so that "green hair" trains the way "red hair" did. Options a user gives win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bridge.lenerf.edit_module import EditSpec

PART_WORDS = {
    "eyes": ("eye", "eyes", "iris", "irises", "pupil", "pupils"),
    "hair": ("hair", "hairs", "haircut", "hairstyle", "fringe", "bangs"),
    "mouth": ("mouth", "lip", "lips", "teeth"),
}
EYES_OUT = {"label_baseline": "a face"}
"""Every mask but the eyes' takes a neutral prompt's relevance off (red hair, open mouth)."""


@dataclass(frozen=True)
class Recipe:
    name: str
    options: dict = field(default_factory=dict)
    """EditTrainingConfig fields and their values."""
    clip_loss: str = "contrastive"


LENERF_DEFAULTS = Recipe("LENeRF's defaults")


def mask_part(mask_prompt: str) -> str | None:
    """The part a mask prompt names ("the eyes" -> "eyes", "her lips" -> "mouth"), or None."""
    words = set(re.findall(r"[a-z]+", mask_prompt.lower()))
    for part, names in PART_WORDS.items():
        if words & set(names):
            return part
    return None


def recipe_for(spec: EditSpec) -> Recipe:
    part = mask_part(spec.mask)
    if part == "eyes":
        return far_in_w("eyes (as blue eyes)")
    if part == "hair":
        return far_in_w("hair (as red hair)", yaw_range=(-90.0, 90.0), **EYES_OUT)
    if part == "mouth" and spec.geometry:
        return far_in_w("mouth shape (as open mouth)", geometry_labels="target", **EYES_OUT)
    return far_in_w("other (as red hair, front views)", **EYES_OUT)


def far_in_w(name: str, **options) -> Recipe:
    """What every shipped edit trained with: a tenth of LENeRF's residual cost and the global loss."""
    return Recipe(name, {"residual_weight": 0.002, **options}, "global")
