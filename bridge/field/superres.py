"""EG3D's super-resolution network: the neural render's 32 feature channels -> a 512^2 (or 256^2,
128^2) picture, styled by the last w. It only makes pictures: fields, meshes and edits never use it.

Each released kind is two StyleGAN2 synthesis blocks after an optional resize of the input to the
kind's input resolution (bilinear, anti-aliased where the checkpoint says so):

| EG3D class                      | input | blocks (channels, up-samples?)  | output |
|---------------------------------|-------|---------------------------------|--------|
| SuperresolutionHybrid8XDC       | 128   | (256, yes), (128, yes)          | 512    |
| SuperresolutionHybrid8X         | 128   | (128, yes), (64, yes)           | 512    |
| SuperresolutionHybrid4X         | 128   | (128, no), (64, yes)            | 256    |
| SuperresolutionHybridDeepfp32   | 128   | (128, no), (64, yes)            | 256    |
| SuperresolutionHybrid2X         | 64    | (128, no), (64, yes)            | 128    |

Every layer of both blocks takes the last of the generator's ws. The input is EG3D's feature image:
the composited decoder features (plus 1 - opacity with a white background) scaled to [-1, 1]; its
first three channels are the raw rgb picture the network refines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from bridge.field.synthesis import SynthesisBlock


@dataclass(frozen=True)
class SuperResolutionLayout:
    input_resolution: int
    blocks: tuple[tuple[int, bool], ...]
    """(out channels, up-samples 2x) per synthesis block."""

    @property
    def output_resolution(self) -> int:
        return self.input_resolution * 2 ** sum(up for _, up in self.blocks)


LAYOUTS = {
    "SuperresolutionHybrid8XDC": SuperResolutionLayout(128, ((256, True), (128, True))),
    "SuperresolutionHybrid8X": SuperResolutionLayout(128, ((128, True), (64, True))),
    "SuperresolutionHybrid4X": SuperResolutionLayout(128, ((128, False), (64, True))),
    "SuperresolutionHybridDeepfp32": SuperResolutionLayout(128, ((128, False), (64, True))),
    "SuperresolutionHybrid2X": SuperResolutionLayout(64, ((128, False), (64, True))),
}


@dataclass(frozen=True)
class SuperResolutionConfig:
    kind: str = "SuperresolutionHybrid8XDC"
    """EG3D's class name (a key of LAYOUTS)."""
    neural_resolution: int = 128
    """The resolution EG3D renders the feature image at before super-resolving it."""
    antialias: bool = True
    conv_clamp: float | None = None
    """EG3D clamps its super-resolution activations at 256 when they ran in fp16 (sr_num_fp16_res > 0)."""
    noise_mode: str = "none"

    @property
    def layout(self) -> SuperResolutionLayout:
        return LAYOUTS[self.kind]

    def __post_init__(self) -> None:
        if self.kind not in LAYOUTS:
            raise ValueError(f"unknown super-resolution kind {self.kind!r} (known: {', '.join(LAYOUTS)})")


class SuperResolution(nn.Module):
    """(feature image (B, C, H, W) in [-1, 1], ws (B, num_ws, w_dim)) -> picture (B, 3, S, S) in about [-1, 1]."""

    def __init__(self, config: SuperResolutionConfig, in_channels: int, w_dim: int, upsampling: str = "eg3d_fir"):
        super().__init__()
        self.config = config
        layout = config.layout
        resolution, channels = layout.input_resolution, in_channels
        for index, (out_channels, up) in enumerate(layout.blocks):
            resolution *= 2 if up else 1
            block = SynthesisBlock(
                channels,
                out_channels,
                w_dim,
                resolution,
                img_channels=3,
                use_noise=True,
                upsampling=upsampling,
                conv_clamp=config.conv_clamp,
                up=up,
            )
            setattr(self, f"block{index}", block)
            channels = out_channels

    def forward(self, features: Tensor, ws: Tensor) -> Tensor:
        layout = self.config.layout
        if features.shape[-1] != layout.input_resolution:
            size = (layout.input_resolution, layout.input_resolution)
            features = F.interpolate(features, size=size, mode="bilinear", align_corners=False, antialias=self.config.antialias)
        x, image = features, features[:, :3]
        for index in range(len(layout.blocks)):
            block = getattr(self, f"block{index}")
            block_ws = ws[:, -1:].expand(-1, block.num_conv + block.num_torgb, -1)
            x, image = block(x, image, block_ws, self.config.noise_mode)
        return image


def feature_image(rendered: dict[str, Tensor], white_back: bool) -> Tensor:
    """EG3D's feature image from a render of the "features" channel (and "opacity"): (B, C, H, W) in [-1, 1]."""
    features = rendered["features"]
    if white_back:
        features = features + (1 - rendered["opacity"])
    return features * 2 - 1
