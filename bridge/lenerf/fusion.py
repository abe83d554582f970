"""The locally edited field: source and target tri-plane features fused by the attention field.

For a point x the source features are read at x' (x itself, or x + T(x) with the deformation
network), the target planes at x; the attention field gives m, and the raw plane samples are
blended before the frozen decoder (Eq. 6): F = (1 - m) F_s + m F_t. With `texture_only` the density
stays the source's, so a colour edit cannot change the shape. m is the same on the three planes
and the decoder reads their mean, so features are carried as that mean (B, M, C) throughout: the
blend of the means is the mean of the blend, at a third of the work.

The source is anything that gives raw plane samples at points: the source head's planes, or the
fused features of an earlier edit -- which makes sequential edits a chain of EditedFields, each
keeping its own mask. Calling a field returns what the volume renderer composites: sigma, rgb,
features, this edit's mask and the masks of every step ("masks", (B, M, steps)); `mask_field`
renders the mask with the source densities, as LENeRF does for its mask loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bridge.field.decoder import OSGDecoder
from bridge.field.triplane import sample_plane_mean

ACTIVE_SIGMA = -5.0
"""Raw density below which a point is empty for every render (softplus(-6) ~ 0.0025 per unit)."""


class PlaneFeatures:
    """Plane samples of fixed planes: points (B, M, 3) -> the three planes' mean (B, M, C)."""

    def __init__(self, planes: Tensor, box_size: float = 1.0):
        self.planes = planes
        self.box_size = box_size

    def features(self, points: Tensor) -> tuple[Tensor, Tensor | None]:
        """-> (features (B, M, C), masks of earlier steps (B, M, k) or None)."""
        return sample_plane_mean(self.planes, points, self.box_size), None


class EditedField:
    def __init__(
        self,
        decoder: OSGDecoder,
        source: PlaneFeatures | EditedField,
        target: PlaneFeatures,
        ws_source: Tensor,
        ws_target: Tensor,
        attention: nn.Module,
        deformation: nn.Module | None = None,
        texture_only: bool = False,
        mask_override: float | None = None,
    ):
        self.decoder = decoder
        self.source, self.target = source, target
        self.ws_source, self.ws_target = ws_source, ws_target
        self.attention, self.deformation = attention, deformation
        self.texture_only = texture_only
        self.mask_override = mask_override
        """A constant m for every point (tests and the "without AFN" comparison use 0 or 1)."""

    def _attention(
        self, source: Tensor, source_points: Tensor, target: Tensor | None, points: Tensor, source_sigma: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """m at every point, the rows (of the points flattened over heads) where the attention
        network ran (None: everywhere), and the fused features. `target`: the target's features at
        every point, or None to read them only at those rows (a texture-only edit of one head).

        The attention network only runs where the source (or, for geometry edits, the target) has
        density: elsewhere m cannot change a render, and empty space is most of the samples along
        a ray. There m = 0 and the fused features are the source's (lerp with weight 0 is its
        start, exactly)."""
        if self.mask_override is not None:
            mask = torch.full_like(points[..., :1], float(self.mask_override))
            return mask, None, torch.lerp(source, target, mask)
        active = source_sigma[..., 0] > ACTIVE_SIGMA
        if not self.texture_only:
            active = active | (self.decoder.sigma(target)[..., 0] > ACTIVE_SIGMA)
        mask = torch.zeros_like(points[..., :1])
        rows = active.reshape(-1).nonzero().squeeze(1)  # the active points of all heads, as rows of (B * M, k)
        if not rows.numel():
            return mask, rows, source
        at_rows = _rows(target, rows) if target is not None else self.target.features(_rows(points, rows)[None])[0][0]
        latent = self.attention.embed(self.ws_source, self.ws_target).index_select(0, rows // points.shape[1])
        source_rows, points_rows = _rows(source, rows), _rows(points, rows)
        source_points_rows = points_rows if source_points is points else _rows(source_points, rows)
        m = self.attention(source_rows, source_points_rows, at_rows, points_rows, latent)
        return _with_rows(mask, rows, m), rows, _with_rows(source, rows, torch.lerp(source_rows, at_rows, m))

    def _blend(self, points: Tensor) -> dict[str, Tensor]:
        source_points = points if self.deformation is None else self.deformation(points, self.ws_source, self.ws_target)
        source, earlier_masks = self.source.features(source_points)
        rows_only = self.texture_only and self.mask_override is None and points.shape[0] == 1
        target = None if rows_only else self.target.features(points)[0]
        decoded_source = self.decoder.decode(source)
        mask, rows, fused = self._attention(source, source_points, target, points, decoded_source["sigma"])
        masks = mask if earlier_masks is None else torch.cat([earlier_masks, mask], dim=-1)
        return {"decoded_source": decoded_source, "fused": fused, "rows": rows, "mask": mask, "masks": masks}

    def _decoded_fused(self, blend: dict) -> dict[str, Tensor]:
        """The decoder at the fused features. Where the attention network did not run, m = 0 and the
        fused features are the source's (lerp with weight 0 is its start, exactly): its decoding is reused."""
        rows, fused = blend["rows"], blend["fused"]
        if rows is None or rows.numel() == fused.shape[0] * fused.shape[1]:
            return self.decoder.decode(fused)
        out = {name: value for name, value in blend["decoded_source"].items() if name != "rgb"}
        if rows.numel():
            inner = self.decoder.decode(_rows(fused, rows))
            out = {name: _with_rows(value, rows, inner[name]) for name, value in out.items()}
        out["rgb"] = out["features"][..., :3]
        return out

    def features(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Fused plane features (B, M, C) and the masks of every step: the source of a following edit."""
        blend = self._blend(points)
        return blend["fused"], blend["masks"]

    def __call__(self, points: Tensor) -> dict[str, Tensor]:
        blend = self._blend(points)
        out = self._decoded_fused(blend)
        if self.texture_only:
            out["sigma"] = blend["decoded_source"]["sigma"]
        out["mask"] = blend["mask"]
        out["masks"] = blend["masks"]
        return out

    def mask_field(self, points: Tensor) -> dict[str, Tensor]:
        """This edit's mask with the source's density (for rendering the 2D mask)."""
        blend = self._blend(points)
        return {"sigma": blend["decoded_source"]["sigma"], "mask": blend["mask"]}

    def source_field(self, points: Tensor) -> dict[str, Tensor]:
        """The unedited source, read at the points themselves (no deformation)."""
        return self.decoder.decode(self.source.features(points)[0])

    def target_field(self, points: Tensor) -> dict[str, Tensor]:
        return self.decoder.decode(self.target.features(points)[0])


def _rows(values: Tensor, rows: Tensor) -> Tensor:
    """(B, M, k) -> the given rows of its (B * M, k) view."""
    return values.reshape(-1, values.shape[-1]).index_select(0, rows)


def _with_rows(values: Tensor, rows: Tensor, new: Tensor) -> Tensor:
    """(B, M, k) with the given rows of its (B * M, k) view replaced by `new` (a new tensor)."""
    return values.reshape(-1, values.shape[-1]).index_copy(0, rows, new).reshape(values.shape)
