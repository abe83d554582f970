"""What the bridge needs of a generator to make heads: HeadPrior (the bundled prior) and EG3DHeads
(an imported EG3D generator) are the two kinds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.field.generator import TriPlaneGenerator
from bridge.field.renderer import Field, RenderConfig, render_orbit
from bridge.images import overlay, sheet

PICTURE_SIZE = 128
"""Side of a preview picture when the generator has no super-resolution network."""


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

    @property
    def picture_size(self) -> int:
        superresolution = self.generator.config.superresolution
        return PICTURE_SIZE if superresolution is None else superresolution.layout.output_resolution

    def view(
        self,
        field: Field,
        ws: Tensor,
        yaw_deg: float,
        size: int | None = None,
        channels: tuple[str, ...] = ("rgb",),
        render_config: RenderConfig | None = None,
    ) -> dict[str, Tensor]:
        """A picture of each head of `field` (latents `ws`) from `yaw_deg` at eye level:
        {name: (B, k, size, size)}, rendered with the generator's render config unless another is
        given. A generator with a super-resolution network renders at its neural resolution and
        super-resolves the rgb, as EG3D makes its pictures."""
        size = size or self.picture_size
        config = render_config or self.render_config
        superresolution = self.generator.config.superresolution
        if superresolution is None:
            return render_orbit(field, config, yaw_deg, 0.0, size, channels, batch=len(ws))
        rendered = render_orbit(field, config, yaw_deg, 0.0, superresolution.neural_resolution, (*channels, "features"), batch=len(ws))
        out = {name: value for name, value in rendered.items() if name != "features" or "features" in channels}
        out["rgb"] = self.generator.super_resolve(rendered, ws)
        return {name: _resized(value, size) for name, value in out.items()}

    def before_after(
        self,
        source: Field,
        edited: Field,
        ws: Tensor,
        edited_ws: Tensor,
        yaw_deg: float,
        size: int | None = None,
        render_config: RenderConfig | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The first head before and after an edit: (source | edited | the edit's mask over it) as
        one picture (3, H, 3W + gaps), the mask (H, W), and the before and after pictures (3, H, W).
        `edited` must give a "mask" channel."""
        before = self.view(source, ws, yaw_deg, size, render_config=render_config)["rgb"][0]
        after = self.view(edited, edited_ws, yaw_deg, size, ("rgb", "mask"), render_config)
        mask = after["mask"][0, 0].clamp(0, 1)
        return sheet([before, after["rgb"][0], overlay(after["rgb"][0], mask)]), mask, before, after["rgb"][0]


def _resized(image: Tensor, size: int) -> Tensor:
    if image.shape[-1] == size:
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
