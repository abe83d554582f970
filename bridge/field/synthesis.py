"""StyleGAN2 synthesis backbone ("skip" architecture) whose image is the tri-plane stack."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bridge.field.layers import SynthesisLayer, ToPlanesLayer, upsample


class SynthesisBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        use_noise: bool,
        upsampling: str = "bilinear",
        conv_clamp: float | None = None,
        up: bool = True,
    ):
        """`up`: the block doubles the resolution of its input (x and img); EG3D's
        super-resolution has blocks that keep it (SynthesisBlockNoUp)."""
        super().__init__()
        self.resolution, self.upsampling, self.up = resolution, upsampling, up
        layer = dict(upsampling=upsampling, conv_clamp=conv_clamp)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=up, use_noise=use_noise, **layer)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, up=False, use_noise=use_noise, **layer)
        self.torgb = ToPlanesLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str) -> tuple[Tensor, Tensor]:
        """ws: (B, num_conv + num_torgb, w_dim)."""
        w_iter = iter(ws.unbind(dim=1))
        if x is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, next(w_iter), noise_mode)
        else:
            x = self.conv0(x, next(w_iter), noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode)
        y = self.torgb(x, next(w_iter))
        if img is None:
            img = y
        else:
            img = (upsample(img, self.upsampling) if self.up else img) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> planes image (B, img_channels, R, R)."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        upsampling: str = "bilinear",
        conv_clamp: float | None = None,
    ):
        super().__init__()
        log2 = int(math.log2(img_resolution))
        if img_resolution < 4 or 2**log2 != img_resolution:
            raise ValueError(f"plane resolution must be a power of two >= 4, got {img_resolution}")
        self.img_resolution = img_resolution
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels, use_noise, upsampling, conv_clamp)
            self.num_ws += block.num_conv
            if res == self.block_resolutions[-1]:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: Tensor, noise_mode: str = "const") -> Tensor:
        x = img = None
        w_index = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_index, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode)
            w_index += block.num_conv
        return img
