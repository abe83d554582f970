"""The locally edited field: source and target tri-plane features fused by the attention field.

For a point x the source planes are read at x' (x itself, or x + T(x) with the deformation
network), the target planes at x; the attention field gives m, and the raw plane samples are
blended before the frozen decoder (Eq. 6): F = (1 - m) F_s + m F_t. With `texture_only` the density
stays the source's, so a colour edit cannot change the shape. Calling the field returns what the
volume renderer composites: sigma, rgb, features and the mask; `mask_field` renders the mask with
the source densities, as LENeRF does for its mask loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bridge.field.decoder import OSGDecoder
from bridge.field.triplane import sample_planes
from bridge.lenerf.modules import EditModules


class EditedField:
    def __init__(
        self,
        decoder: OSGDecoder,
        planes_source: Tensor,
        planes_target: Tensor,
        ws_source: Tensor,
        ws_target: Tensor,
        modules: EditModules,
        box_size: float = 1.0,
        texture_only: bool = False,
        mask_override: float | None = None,
    ):
        self.decoder = decoder
        self.planes_source, self.planes_target = planes_source, planes_target
        self.ws_source, self.ws_target = ws_source, ws_target
        self.modules = modules
        self.box_size = box_size
        self.texture_only = texture_only
        self.mask_override = mask_override
        """A constant m for every point (tests and the "without AFN" comparison use 0 or 1)."""

    def _parts(self, points: Tensor) -> dict[str, Tensor]:
        deformation = self.modules.deformation
        source_points = points if deformation is None else deformation(points, self.ws_source, self.ws_target)
        source = sample_planes(self.planes_source, source_points, self.box_size)  # (B, 3, M, C)
        target = sample_planes(self.planes_target, points, self.box_size)
        if self.mask_override is None:
            mask = self.modules.attention(
                source.mean(dim=1), source_points, target.mean(dim=1), points, self.ws_source, self.ws_target
            )
        else:
            mask = torch.full_like(points[..., :1], float(self.mask_override))
        return {"source": source, "target": target, "mask": mask}

    def __call__(self, points: Tensor) -> dict[str, Tensor]:
        parts = self._parts(points)
        m = parts["mask"][:, None]  # (B, 1, M, 1) over the three planes
        fused = (1 - m) * parts["source"] + m * parts["target"]
        out = self.decoder(fused)
        if self.texture_only:
            out["sigma"] = self.decoder(parts["source"])["sigma"]
        out["mask"] = parts["mask"]
        return out

    def mask_field(self, points: Tensor) -> dict[str, Tensor]:
        """The mask with the source's density (for rendering the 2D mask)."""
        parts = self._parts(points)
        return {"sigma": self.decoder(parts["source"])["sigma"], "mask": parts["mask"]}

    def source_field(self, points: Tensor) -> dict[str, Tensor]:
        return self.decoder(sample_planes(self.planes_source, points, self.box_size))

    def target_field(self, points: Tensor) -> dict[str, Tensor]:
        return self.decoder(sample_planes(self.planes_target, points, self.box_size))
