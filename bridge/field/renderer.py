"""Volume rendering of any field with EG3D's sampling and ray marching.

A field is a callable `points (B, M, 3) -> {"sigma": (B, M, 1), name: (B, M, k), ...}` with raw
density `sigma` (density = softplus(sigma + density_bias), EG3D's softplus(sigma - 1)). Every other
channel the field returns is alpha-composited along the rays: colours, features, masks, part
probabilities. Each ray gets `depth_samples` stratified samples between `ray_start` and `ray_end`,
then `importance_samples` more drawn from the smoothed coarse weights; both sets are marched
together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.field.cameras import CAMERA_RADIUS, FFHQ_PIVOT, focal_length, intrinsics_matrix, orbit_pose, ray_bundle
from bridge.field.layers import softplus
from bridge.field.occupancy import SkippingField, evaluated_where

Field = Callable[[Tensor], dict[str, Tensor]]
OUTSIDE_BOX_SIGMA = -100.0
STOP_GROUP = 8
"""Coarse samples evaluated at a time when rays may stop: smaller groups stop closer to the surface."""


@dataclass(frozen=True)
class RenderConfig:
    ray_start: float | None = 2.25
    ray_end: float | None = 3.3
    """None, None: each ray is sampled where it crosses the box (EG3D's "auto", its ShapeNet cars)."""
    depth_samples: int = 48
    importance_samples: int = 48
    box_size: float = 1.0
    density_bias: float = -1.0
    background: tuple[float, ...] | None = None
    """Colour composited behind the rgb channel; None leaves it black, as EG3D does for FFHQ."""
    clamp_to_box: bool = False
    """Give points outside the box zero density (EG3D relies on the decoder instead)."""
    perturb: bool = False
    """Jitter the stratified samples and draw importance samples at random (training)."""
    rays_per_chunk: int = 4096
    stop_transmittance: float = 1e-5
    """Stop sampling a ray where the light left along it falls under this (renders without
    gradients, one head at a time); 0 samples every ray to its end, as EG3D does."""
    camera_radius: float = CAMERA_RADIUS
    camera_pivot: tuple[float, float, float] = FFHQ_PIVOT
    focal: float = focal_length()
    """The orbit camera of views: the model's avg_camera_radius and avg_camera_pivot, and the
    normalised focal length of its dataset (FFHQ and AFHQ 4.2647, ShapeNet 1.0254)."""

    def orbit(self, yaw_deg: float | Tensor, pitch_deg: float | Tensor) -> Tensor:
        """cam2world poses (B, 4, 4) of the orbit camera at these angles."""
        return orbit_pose(yaw_deg, pitch_deg, self.camera_radius, self.camera_pivot)

    def intrinsics(self) -> Tensor:
        return intrinsics_matrix(focal=self.focal)

    @classmethod
    def from_dict(cls, data: dict) -> "RenderConfig":
        values = dict(data)
        for name in ("background", "camera_pivot"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def _march(depths: Tensor, sigma: Tensor, channels: dict[str, Tensor], density_bias: float) -> tuple[dict[str, Tensor], Tensor]:
    """depths, sigma: (B, R, S, 1); channels (B, R, S, k) -> composites (B, R, k) and weights (B, R, S-1, 1)."""
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    sigma_mid = (sigma[:, :, :-1] + sigma[:, :, 1:]) / 2
    density = softplus(sigma_mid + density_bias)
    alpha = 1 - torch.exp(-density * deltas)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], dim=2), dim=2)
    weights = alpha * transmittance[:, :, :-1]
    out = {}
    for name, values in channels.items():
        values_mid = (values[:, :, :-1] + values[:, :, 1:]) / 2
        out[name] = (weights * values_mid).sum(dim=2)
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    opacity = weights.sum(dim=2)
    depth = (weights * depths_mid).sum(dim=2) / opacity.clamp_min(1e-8)
    out["depth"] = torch.where(opacity > 1e-6, depth, torch.full_like(depth, float(depths.max())))
    out["opacity"] = opacity
    return out, weights


def _sample_pdf(bins: Tensor, weights: Tensor, count: int, deterministic: bool) -> Tensor:
    """Inverse-transform samples from piecewise-constant weights. bins (N, K+1), weights (N, K)."""
    pdf = (weights + 1e-5) / (weights + 1e-5).sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    if deterministic:
        u = torch.linspace(0, 1, count, device=bins.device).expand(bins.shape[0], count).contiguous()
    else:
        u = torch.rand(bins.shape[0], count, device=bins.device)
    index = torch.searchsorted(cdf, u, right=True)
    below = (index - 1).clamp_min(0)
    above = index.clamp_max(cdf.shape[-1] - 1)
    cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
    bin_below, bin_above = bins.gather(1, below), bins.gather(1, above)
    span = cdf_above - cdf_below
    span = torch.where(span < 1e-5, torch.ones_like(span), span)
    return bin_below + (u - cdf_below) / span * (bin_above - bin_below)


def box_ray_limits(origins: Tensor, directions: Tensor, box_size: float) -> tuple[Tensor, Tensor]:
    """Distances (B, R) at which rays enter and leave the box [-box_size/2, box_size/2]^3. Rays
    that miss it get the range [nearest entry, farthest entry] of the rays that hit, as EG3D does."""
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    near_planes = (-box_size / 2 - origins) / safe
    far_planes = (box_size / 2 - origins) / safe
    start = torch.minimum(near_planes, far_planes).amax(dim=-1).clamp_min(0.0)
    end = torch.maximum(near_planes, far_planes).amin(dim=-1)
    hits = end > start
    if hits.any() and not hits.all():
        start = torch.where(hits, start, start[hits].min())
        end = torch.where(hits, end, start[hits].max())
    return start, end


class VolumeRenderer:
    def __init__(self, config: RenderConfig = RenderConfig()):
        self.config = config

    def _evaluate(self, field: Field, origins: Tensor, directions: Tensor, depths: Tensor, keep: Tensor | None = None) -> dict[str, Tensor]:
        """depths (B, R, S, 1) -> field outputs reshaped to (B, R, S, k). Where `keep` (B, R, S) is
        False the field is not evaluated: those samples are empty (one head only)."""
        batch, rays, samples, _ = depths.shape
        points = (origins.unsqueeze(2) + directions.unsqueeze(2) * depths).reshape(batch, rays * samples, 3)
        if keep is not None and isinstance(field, SkippingField):  # one gather for both reasons
            keep, field = keep.reshape(batch, -1) & field.occupancy(points), field.field
        out = field(points) if keep is None else evaluated_where(field, points, keep.reshape(batch, -1))
        if self.config.clamp_to_box:
            outside = (points.abs() > self.config.box_size / 2).any(dim=-1, keepdim=True)
            out = dict(out, sigma=out["sigma"].masked_fill(outside, OUTSIDE_BOX_SIGMA))
        return {name: value.reshape(batch, rays, samples, -1) for name, value in out.items()}

    def _stops_rays(self, origins: Tensor) -> bool:
        cfg = self.config
        return cfg.stop_transmittance > 0 and not cfg.perturb and origins.shape[0] == 1 and not torch.is_grad_enabled()

    def _optical_depth(self, depths: Tensor, sigma: Tensor) -> Tensor:
        """(B, R, S, 1) each -> (B, R, S): the optical depth from the first sample to each, as _march integrates it."""
        density = softplus((sigma[:, :, :-1, 0] + sigma[:, :, 1:, 0]) / 2 + self.config.density_bias)
        steps = density * (depths[:, :, 1:, 0] - depths[:, :, :-1, 0])
        return torch.cat([torch.zeros_like(steps[:, :, :1]), torch.cumsum(steps, dim=2)], dim=2)

    def _evaluate_front_to_back(self, field: Field, origins: Tensor, directions: Tensor, depths: Tensor) -> dict[str, Tensor]:
        """The coarse samples, STOP_GROUP at a time, each group only on the rays that light still reaches."""
        limit = -math.log(self.config.stop_transmittance)
        batch, rays = origins.shape[:2]
        groups: list[dict[str, Tensor]] = []
        optical = torch.zeros(batch, rays, device=origins.device)
        last: tuple[Tensor, Tensor] | None = None  # the previous group's last depth and sigma
        for start in range(0, depths.shape[2], STOP_GROUP):
            group_depths = depths[:, :, start : start + STOP_GROUP]
            alive = (optical < limit)[:, :, None].expand(-1, -1, group_depths.shape[2])
            group = self._evaluate(field, origins, directions, group_depths, None if bool(alive.all()) else alive)
            marched_depths, marched_sigma = group_depths, group["sigma"]
            if last is not None:
                marched_depths = torch.cat([last[0], group_depths], dim=2)
                marched_sigma = torch.cat([last[1], group["sigma"]], dim=2)
            optical = optical + self._optical_depth(marched_depths, marched_sigma)[:, :, -1]
            last = group_depths[:, :, -1:], group["sigma"][:, :, -1:]
            groups.append(group)
            if not bool((optical < limit).any()):
                remaining = depths[:, :, start + STOP_GROUP :]
                if remaining.shape[2]:
                    groups.append(
                        self._evaluate(
                            field, origins, directions, remaining, torch.zeros(remaining.shape[:3], dtype=torch.bool, device=depths.device)
                        )
                    )
                break
        return {name: torch.cat([group[name] for group in groups], dim=2) for name in groups[0]}

    def render_rays(self, field: Field, origins: Tensor, directions: Tensor) -> dict[str, Tensor]:
        """origins, directions (B, R, 3) -> composites (B, R, k), "depth" and "opacity" (B, R, 1)."""
        cfg = self.config
        batch, rays, _ = origins.shape
        start, end = self._ray_limits(origins, directions)
        steps = torch.linspace(0, 1, cfg.depth_samples, device=origins.device).reshape(1, 1, -1, 1)
        depths = (start + (end - start) * steps).expand(batch, rays, -1, -1)
        if cfg.perturb:
            depths = depths + torch.rand_like(depths) * (end - start) / (cfg.depth_samples - 1)
        stops = self._stops_rays(origins)
        coarse = (
            self._evaluate_front_to_back(field, origins, directions, depths)
            if stops
            else self._evaluate(field, origins, directions, depths)
        )
        if cfg.importance_samples == 0:
            out, _ = self._composite(depths, coarse)
            return out
        _, weights = self._composite(depths, coarse)
        with torch.no_grad():
            flat = weights.reshape(batch * rays, 1, -1)
            smooth = F.avg_pool1d(F.max_pool1d(flat, 2, 1, padding=1), 2, 1).squeeze(1) + 0.01
            mids = 0.5 * (depths[:, :, 1:] + depths[:, :, :-1]).reshape(batch * rays, -1)
            fine_depths = _sample_pdf(mids, smooth[:, 1:-1], cfg.importance_samples, not cfg.perturb)
            fine_depths = fine_depths.reshape(batch, rays, -1, 1)
            keep = self._lit(depths, coarse["sigma"], fine_depths) if stops else None
        fine = self._evaluate(field, origins, directions, fine_depths, keep)
        all_depths = torch.cat([depths, fine_depths], dim=2)
        all_depths, order = torch.sort(all_depths, dim=2)
        merged = {}
        for name in coarse:
            values = torch.cat([coarse[name], fine[name]], dim=2)
            merged[name] = values.gather(2, order.expand(-1, -1, -1, values.shape[-1]))
        out, _ = self._composite(all_depths, merged)
        return out

    def _lit(self, depths: Tensor, sigma: Tensor, fine_depths: Tensor) -> Tensor:
        """(B, R, F) bool: the importance samples that light reaches, by the coarse samples'
        optical depth at the start of the coarse interval before theirs (one interval to spare,
        since the coarse samples can see a thin surface as thicker than it is)."""
        optical = self._optical_depth(depths, sigma)
        interval = torch.searchsorted(depths[..., 0].contiguous(), fine_depths[..., 0].contiguous()) - 2
        return optical.gather(2, interval.clamp_min(0)) < -math.log(self.config.stop_transmittance)

    def _ray_limits(self, origins: Tensor, directions: Tensor) -> tuple[Tensor | float, Tensor | float]:
        """Where sampling starts and ends on each ray: the config's fixed range, or (B, R, 1, 1)
        distances to where the ray enters and leaves the box."""
        cfg = self.config
        if cfg.ray_start is not None and cfg.ray_end is not None:
            return cfg.ray_start, cfg.ray_end
        start, end = box_ray_limits(origins, directions, cfg.box_size)
        return start[..., None, None], end[..., None, None]

    def _composite(self, depths: Tensor, values: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        channels = {name: value for name, value in values.items() if name != "sigma"}
        out, weights = _march(depths, values["sigma"], channels, self.config.density_bias)
        if self.config.background is not None and "rgb" in out:
            background = torch.tensor(self.config.background, device=depths.device, dtype=out["rgb"].dtype)
            out["rgb"] = out["rgb"] + (1 - out["opacity"]) * background
        return out, weights

    def render(
        self,
        field: Field,
        cam2world: Tensor,
        intrinsics: Tensor,
        resolution: int,
        channels: Sequence[str] | None = None,
    ) -> dict[str, Tensor]:
        """Render whole images in ray chunks. -> {name: (B, k, H, W)} for "depth", "opacity" and the
        field's channels (only `channels` if given)."""
        origins, directions = ray_bundle(cam2world, intrinsics, resolution)
        wanted = None if channels is None else set(channels) | {"sigma"}

        def only_wanted(field: Field) -> Field:
            if wanted is None:
                return field
            if isinstance(field, SkippingField):  # skipping stays outermost, where _evaluate sees it
                return SkippingField(field.occupancy, only_wanted(field.field))
            return lambda points: {k: v for k, v in field(points).items() if k in wanted}

        selected = only_wanted(field)

        pieces: dict[str, list[Tensor]] = {}
        for start in range(0, origins.shape[1], self.config.rays_per_chunk):
            stop = start + self.config.rays_per_chunk
            chunk = self.render_rays(selected, origins[:, start:stop], directions[:, start:stop])
            for name, value in chunk.items():
                pieces.setdefault(name, []).append(value)
        batch = cam2world.shape[0]
        return {
            name: torch.cat(parts, dim=1).reshape(batch, resolution, resolution, -1).permute(0, 3, 1, 2) for name, parts in pieces.items()
        }


def render_orbit(
    field: Callable[[Tensor], dict[str, Tensor]],
    render_config: RenderConfig,
    yaw_deg: float | list[float] | Tensor,
    pitch_deg: float | list[float] | Tensor,
    resolution: int,
    channels: tuple[str, ...] = ("rgb",),
    batch: int = 1,
) -> dict[str, Tensor]:
    """One view per head of the field's batch of `batch` heads from the config's orbit camera;
    angles are broadcast over the batch.

    -> {name: (B, k, H, W)}."""
    yaw, pitch = torch.broadcast_tensors(torch.as_tensor(yaw_deg, dtype=torch.float32), torch.as_tensor(pitch_deg, dtype=torch.float32))
    yaw, pitch = yaw.reshape(-1), pitch.reshape(-1)
    if yaw.numel() == 1:
        yaw, pitch = yaw.expand(batch), pitch.expand(batch)
    renderer = VolumeRenderer(render_config)
    return renderer.render(field, render_config.orbit(yaw, pitch), render_config.intrinsics(), resolution, channels=channels)
