"""Mapping network: (z, c) -> w, broadcast to num_ws layers, with truncation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bridge.field.layers import EqualizedLinear, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """EG3D's mapping: z and an embedded conditioning label c are each normalised, concatenated
    and passed through `num_layers` equalised-lr layers (lr multiplier 0.01). In EG3D c is the
    25-number camera label; in the embedded prior c is the head parameter vector."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 2,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
    ):
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("the mapping network needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        if c_dim > 0:
            self.embed = EqualizedLinear(c_dim, w_dim)
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for index, (fan_in, fan_out) in enumerate(zip(features[:-1], features[1:])):
            layer = EqualizedLinear(fan_in, fan_out, activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{index}", layer)
        self.num_layers = num_layers
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> Tensor:
        """z: (B, z_dim), c: (B, c_dim) -> ws: (B, num_ws, w_dim)."""
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1)
        for index in range(self.num_layers):
            x = getattr(self, f"fc{index}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1.0:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws
