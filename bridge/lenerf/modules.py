"""LENeRF's three add-on modules for a frozen tri-plane generator.

- `LatentResidualMapper` (LRM, Sec. 4.1): StyleCLIP's levels mapper. The ws are split into coarse
  (0-3), medium (4-7) and fine (8+) groups; each group has its own MLP (PixelNorm + 4 equalised
  linear layers, leaky ReLU) giving a residual dw; w_t = w_s + scale * dw. StyleCLIP's lr
  multiplier of 0.01 goes with its learning rate of 0.5; with the shared Adam rate of 3e-3 used
  here it left the mapper nearly still (a 500-step run moved w by 0.003), so it is 1.
  Its last layer starts at zero, so an untrained mapper is the identity edit.
- `AttentionFieldNetwork` (AFN, Eq. 5-7): m = A(F_s + x', F_t + x, w_s, w_t) in [0, 1], an MLP
  on the mean plane features of source and target with their positions, conditioned on the two
  latents.
- `DeformationNetwork` (DN, Eq. 7): x' = x + T(x, w_s, w_t); the source field is read at x'.
  Offsets are bounded (tanh * `max_offset`) and start at zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from bridge.field.layers import EqualizedLinear, normalize_2nd_moment, softplus

LEVEL_STARTS = (0, 4, 8)
"""First w index of the coarse, medium and fine groups (StyleCLIP; EG3D has 14 ws, the prior 12)."""


@dataclass(frozen=True)
class ModuleConfig:
    """Sizes of the add-on modules; `num_ws`, `w_dim` and `plane_channels` come from the generator."""

    num_ws: int
    w_dim: int
    plane_channels: int
    mapper_layers: int = 4
    mapper_lr_multiplier: float = 1.0
    residual_scale: float = 0.7
    attention_hidden: int = 64
    attention_layers: int = 3
    latent_embedding: int = 32
    deformation: bool = False
    deformation_hidden: int = 64
    max_offset: float = 0.08
    position_frequencies: int = 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_generator(cls, generator, **sizes) -> "ModuleConfig":
        """The sizes that fit `generator` (a TriPlaneGenerator), with any others overridden."""
        return cls(num_ws=generator.num_ws, w_dim=generator.config.w_dim, plane_channels=generator.config.plane_channels, **sizes)


def level_groups(num_ws: int) -> list[tuple[int, int]]:
    """[(start, stop)] of the coarse/medium/fine groups that exist for `num_ws` ws."""
    starts = [s for s in LEVEL_STARTS if s < num_ws]
    return list(zip(starts, starts[1:] + [num_ws]))


def positional_encoding(x: Tensor, frequencies: int) -> Tensor:
    """x (..., 3) in the box -> (..., 3 + 6 * frequencies): x, sin and cos of 2^k pi x."""
    scales = (2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype)) * torch.pi
    angles = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


class _LevelMapper(nn.Module):
    def __init__(self, w_dim: int, layers: int, lr_multiplier: float):
        super().__init__()
        self.layers = nn.ModuleList(
            EqualizedLinear(w_dim, w_dim, lr_multiplier=lr_multiplier, activation="lrelu" if i < layers - 1 else "linear")
            for i in range(layers)
        )
        with torch.no_grad():
            self.layers[-1].weight.zero_()

    def forward(self, w: Tensor) -> Tensor:
        x = normalize_2nd_moment(w, dim=-1)
        for layer in self.layers:
            x = layer(x)
        return x


class LatentResidualMapper(nn.Module):
    """ws (B, num_ws, w_dim) -> residuals dw of the same shape."""

    def __init__(self, config: ModuleConfig):
        super().__init__()
        self.groups = level_groups(config.num_ws)
        self.mappers = nn.ModuleList(_LevelMapper(config.w_dim, config.mapper_layers, config.mapper_lr_multiplier) for _ in self.groups)
        self.residual_scale = config.residual_scale

    def forward(self, ws: Tensor) -> Tensor:
        return torch.cat([m(ws[:, a:b]) for m, (a, b) in zip(self.mappers, self.groups)], dim=1)

    def target(self, ws: Tensor, strength: float = 1.0) -> Tensor:
        """w_t = w_s + strength * residual_scale * dw."""
        return ws + strength * self.residual_scale * self(ws)


class _LatentPair(nn.Module):
    """(w_s, w_t) -> a small embedding: the mean over ws of each, through one linear layer."""

    def __init__(self, w_dim: int, size: int):
        super().__init__()
        self.linear = nn.Linear(2 * w_dim, size)

    def forward(self, ws_source: Tensor, ws_target: Tensor) -> Tensor:
        return self.linear(torch.cat([ws_source.mean(dim=1), ws_target.mean(dim=1)], dim=-1))


class AttentionFieldNetwork(nn.Module):
    """m = A(F_s + x', F_t + x, w_s, w_t) in [0, 1].

    `embed` turns the latents of each head into a small vector once; `forward` takes per-point
    inputs with any leading shape: features (..., C), points (..., 3), latent (..., E) -> (..., 1)."""

    def __init__(self, config: ModuleConfig, start: float = 0.1):
        super().__init__()
        self.frequencies = config.position_frequencies
        position = 3 + 6 * config.position_frequencies
        self.latents = _LatentPair(config.w_dim, config.latent_embedding)
        sizes = [2 * (config.plane_channels + position) + config.latent_embedding]
        sizes += [config.attention_hidden] * (config.attention_layers - 1) + [1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            self.layers[-1].bias.fill_(float(torch.logit(torch.tensor(start))))

    def embed(self, ws_source: Tensor, ws_target: Tensor) -> Tensor:
        """(B, num_ws, w_dim) twice -> (B, E)."""
        return self.latents(ws_source, ws_target)

    def forward(self, source_features: Tensor, source_points: Tensor, target_features: Tensor, points: Tensor, latent: Tensor) -> Tensor:
        encoded = positional_encoding(points, self.frequencies)
        encoded_source = encoded if source_points is points else positional_encoding(source_points, self.frequencies)
        x = torch.cat([source_features, encoded_source, target_features, encoded, latent], dim=-1)
        for layer in self.layers[:-1]:
            x = softplus(layer(x))
        return torch.sigmoid(self.layers[-1](x))


class DeformationNetwork(nn.Module):
    """x' = x + T(x, w_s, w_t): points (B, M, 3) -> source read positions (B, M, 3)."""

    def __init__(self, config: ModuleConfig):
        super().__init__()
        self.frequencies = config.position_frequencies
        self.max_offset = config.max_offset
        self.latents = _LatentPair(config.w_dim, config.latent_embedding)
        position = 3 + 6 * config.position_frequencies
        hidden = config.deformation_hidden
        self.layers = nn.ModuleList(
            [nn.Linear(position + config.latent_embedding, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 3)]
        )
        with torch.no_grad():
            self.layers[-1].weight.zero_()
            self.layers[-1].bias.zero_()

    def offsets(self, points: Tensor, ws_source: Tensor, ws_target: Tensor) -> Tensor:
        latent = self.latents(ws_source, ws_target)[:, None].expand(-1, points.shape[1], -1)
        x = torch.cat([positional_encoding(points, self.frequencies), latent], dim=-1)
        for layer in self.layers[:-1]:
            x = softplus(layer(x))
        return self.max_offset * torch.tanh(self.layers[-1](x))

    def forward(self, points: Tensor, ws_source: Tensor, ws_target: Tensor) -> Tensor:
        return points + self.offsets(points, ws_source, ws_target)


class EditModules(nn.Module):
    """The three trainable modules of one edit (the deformation network only for geometry edits)."""

    def __init__(self, config: ModuleConfig):
        super().__init__()
        self.config = config
        self.mapper = LatentResidualMapper(config)
        self.attention = AttentionFieldNetwork(config)
        self.deformation = DeformationNetwork(config) if config.deformation else None
