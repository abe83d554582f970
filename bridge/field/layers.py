"""StyleGAN2 building blocks with equalised learning rate.

Weights are stored raw and scaled at run time (`weight_gain = lr_multiplier / sqrt(fan_in)`), as
EG3D's FullyConnectedLayer and conv layers do, so released state dicts map onto these modules
tensor for tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_GAIN = math.sqrt(2.0)
SOFTPLUS_FLOOR = -20.0
"""Inputs below this go into softplus as this: softplus is under 2.1e-9 there either way, and
torch's CPU softplus is 3-5x slower on very negative inputs, which are most of a field's hidden
units and of empty space's densities."""


def softplus(x: Tensor) -> Tensor:
    return F.softplus(x.clamp_min(SOFTPLUS_FLOOR))


def lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class EqualizedLinear(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
        activation: str = "linear",
    ):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.bias_gain
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.activation == "lrelu" else x


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, padding: int = 0, fir_up: bool = False) -> Tensor:
    """Per-sample modulated convolution (StyleGAN2), computed as scale -> shared conv -> rescale.

    x: (B, I, H, W); weight: (O, I, k, k); styles: (B, I). Equal to convolving each sample with its
    own modulated (and demodulated) weight, but one ordinary batched conv is much faster on CPU
    than the grouped-conv form. `fir_up`: up-sample 2x the way EG3D's up layers do (fir_up_conv).
    """
    batch, in_channels = x.shape[:2]
    x = x * styles.reshape(batch, in_channels, 1, 1)
    x = fir_up_conv(x, weight) if fir_up else F.conv2d(x, weight, padding=padding)
    if demodulate:
        modulated = weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)
        x = x * (modulated.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch, -1, 1, 1)
    return x


UPSAMPLING = ("bilinear", "eg3d_fir")
"""How 2x up-sampling is done: "bilinear" (the bundled prior was trained so) or "eg3d_fir", EG3D's
own: zero insertion and the [1, 3, 3, 1] FIR filter with zero padding, and in up-sampling conv
layers a transposed convolution (a true convolution: the kernel is applied flipped, as EG3D's
trained weights expect). In the interior the two filters agree; at the border FIR sees zeros."""


def upsample2x(x: Tensor) -> Tensor:
    """2x up-sampling with the [1, 3, 3, 1] filter (bilinear, half-pixel centres)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _fir(x: Tensor, padding: tuple[int, int, int, int]) -> Tensor:
    """Depthwise 4x4 [1, 3, 3, 1] x [1, 3, 3, 1] filter with gain 4 (the 2x up-sampling gain), zero padded."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = torch.outer(taps, taps) / taps.sum() ** 2 * 4.0
    channels = x.shape[1]
    return F.conv2d(F.pad(x, padding), kernel.expand(channels, 1, 4, 4), groups=channels)


def fir_upsample2x(x: Tensor) -> Tensor:
    """EG3D's upsample2d: insert zeros after every sample, pad (2, 1), FIR filter."""
    batch, channels, height, width = x.shape
    spread = x.new_zeros(batch, channels, height, 2, width, 2)
    spread[:, :, :, 0, :, 0] = x
    return _fir(spread.reshape(batch, channels, 2 * height, 2 * width), (2, 1, 2, 1))


def fir_up_conv(x: Tensor, weight: Tensor) -> Tensor:
    """EG3D's up-sampling conv (3x3, padding 1): stride-2 transposed convolution, then the FIR
    filter padded by 1. (B, I, H, W) -> (B, O, 2H, 2W)."""
    return _fir(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), (1, 1, 1, 1))


def upsample(x: Tensor, mode: str) -> Tensor:
    return fir_upsample2x(x) if mode == "eg3d_fir" else upsample2x(x)


class SynthesisLayer(nn.Module):
    """Style-modulated 3x3 conv + noise + bias + leaky ReLU, optionally up-sampling first."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: bool,
        use_noise: bool,
        upsampling: str = "bilinear",
        conv_clamp: float | None = None,
    ):
        super().__init__()
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        self.up, self.upsampling, self.conv_clamp = up, upsampling, conv_clamp
        self.resolution = resolution
        self.use_noise = use_noise
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "const") -> Tensor:
        styles = self.affine(w)
        fir_up = self.up and self.upsampling == "eg3d_fir"
        if self.up and not fir_up:
            x = upsample2x(x)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, padding=1, fir_up=fir_up)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
            else:
                noise = self.noise_const
            x = x + noise * self.noise_strength
        x = lrelu(x + self.bias.reshape(1, -1, 1, 1))
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)


class ToPlanesLayer(nn.Module):
    """StyleGAN2's ToRGB: a modulated 1x1 conv without demodulation, linear output."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias.reshape(1, -1, 1, 1)
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)
