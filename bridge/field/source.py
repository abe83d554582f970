"""What the bridge needs of a generator to make heads: HeadPrior (the bundled prior) and EG3DHeads
(an imported EG3D generator) are the two kinds."""

from __future__ import annotations

import torch
from torch import Tensor

from bridge.field.generator import TriPlaneGenerator
from bridge.field.renderer import RenderConfig


class HeadSource:
    name = "generator"
    surface_level = 0.0
    """The raw density at which FieldGrids of its heads are meshed."""

    def __init__(self, generator: TriPlaneGenerator, metadata: dict | None = None):
        self.generator = generator
        self.metadata = metadata or {}

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def render_config(self) -> RenderConfig:
        return self.generator.config.render

    @property
    def sha256(self) -> str:
        """Identity of these weights (edit modules record the generator they were trained on)."""
        return str(self.metadata.get("sha256", ""))

    def sample_ws(self, batch: int, generator: torch.Generator) -> Tensor:
        """ws (batch, num_ws, w_dim) of random heads, as edit training draws them."""
        raise NotImplementedError

    def head_ws(self, seed: int, overrides: dict | None = None) -> tuple[Tensor, dict]:
        """The ws (num_ws, w_dim) of head `seed` (with overrides where the source has parameters) and its description."""
        raise NotImplementedError
