"""Applying trained edits to any head without optimisation: one edit, a stack, a partial edit.

One edit: w_t = w_s + strength * scale * M(w_s); the target planes come from w_t, and the edit's
attention field (and deformation) fuse them with the source. A stack applies edits in order, the
fused field of edit k being the source of edit k + 1 and each step keeping its own mask. A partial
edit takes the mapper of one module and the attention field of another ("blue eyes" with the mask
of "left eye").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from bridge.errors import BridgeError
from bridge.field.generator import TriPlaneField, TriPlaneGenerator
from bridge.lenerf.edit_module import EditModule
from bridge.lenerf.fusion import EditedField, PlaneFeatures

MAX_STRENGTH = 1.5


@dataclass(frozen=True)
class EditStep:
    module: EditModule
    strength: float = 1.0
    mask_module: EditModule | None = None
    """Take the attention field from this module instead (a partial edit)."""
    texture_only: bool | None = None
    """Leave the Deformation Network out (True) or not; None keeps what the module was trained for."""


def check_strength(strength: float) -> float:
    if not 0.0 <= float(strength) <= MAX_STRENGTH:
        raise BridgeError(f"Edit strength must lie between 0 and {MAX_STRENGTH}, got {strength}.")
    return float(strength)


def apply_edits(generator: TriPlaneGenerator, ws: Tensor, steps: Sequence[EditStep]) -> tuple[EditedField | TriPlaneField, Tensor]:
    """The edited field of heads `ws` (B, num_ws, w_dim) after `steps`, and the final latents.

    With no steps the result is the unedited head."""
    if not steps:
        return generator.field(ws), ws
    box = generator.config.render.box_size
    field: EditedField | PlaneFeatures = PlaneFeatures(generator.planes(ws), box)
    current = ws
    for step in steps:
        modules = step.module.modules
        target_ws = modules.mapper.target(current, check_strength(step.strength))
        attention = (step.mask_module or step.module).modules.attention
        field = EditedField(
            generator.decoder,
            field,
            PlaneFeatures(generator.planes(target_ws), box),
            current,
            target_ws,
            attention,
            modules.deformation,
            texture_only=step.module.spec.texture_only if step.texture_only is None else step.texture_only,
        )
        current = target_ws
    return field, current
