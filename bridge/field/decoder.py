"""EG3D's OSGDecoder: the mean of the three plane features -> raw density and features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bridge.field.layers import EqualizedLinear, softplus


class OSGDecoder(nn.Module):
    """features (B, 3, M, C) -> {"sigma": (B, M, 1) raw, "features": (B, M, out), "rgb": (B, M, 3)}.

    sigma is raw: renderers turn it into density with softplus(sigma - 1). rgb is the first three
    output features, sigmoid-squashed to (-0.001, 1.001) as EG3D does.
    """

    def __init__(self, in_features: int, hidden: int = 64, out_features: int = 32, lr_multiplier: float = 1.0):
        super().__init__()
        self.fc0 = EqualizedLinear(in_features, hidden, lr_multiplier=lr_multiplier)
        self.fc1 = EqualizedLinear(hidden, 1 + out_features, lr_multiplier=lr_multiplier)

    def forward(self, sampled: Tensor) -> dict[str, Tensor]:
        return self.decode(sampled.mean(dim=1))

    def decode(self, mean_features: Tensor) -> dict[str, Tensor]:
        """The mean of the three planes' features (B, M, C) -> the decoder's outputs."""
        x = self.fc1(softplus(self.fc0(mean_features)))
        features = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return {"sigma": x[..., :1], "features": features, "rgb": features[..., :3]}

    def sigma(self, mean_features: Tensor) -> Tensor:
        """Only the raw density (B, M, 1): the first output, without the features' work. Equal to
        decode's to float rounding, not bit for bit."""
        weight = self.fc1.weight[:1] * self.fc1.weight_gain
        bias = None if self.fc1.bias is None else self.fc1.bias[:1] * self.fc1.bias_gain
        return F.linear(softplus(self.fc0(mean_features)), weight, bias)
