"""The tri-plane generator: mapping -> synthesis backbone -> planes -> decoder, and the field it
produces for one latent, queried at any points with the planes computed once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from bridge.field.decoder import OSGDecoder
from bridge.field.mapping import MappingNetwork
from bridge.field.renderer import RenderConfig
from bridge.field.superres import SuperResolution, SuperResolutionConfig, feature_image
from bridge.field.synthesis import SynthesisNetwork
from bridge.field.triplane import sample_plane_mean


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes of a tri-plane generator. The defaults are EG3D's released FFHQ models."""

    z_dim: int = 512
    c_dim: int = 25
    w_dim: int = 512
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    conditioning_scale: float = 1.0
    """c is multiplied by this before mapping: EG3D's c_scale, 0 for models trained without pose
    conditioning (c_gen_conditioning_zero, e.g. ShapeNet cars)."""
    plane_resolution: int = 256
    plane_channels: int = 32
    channel_base: int = 32768
    channel_max: int = 512
    use_noise: bool = True
    upsampling: str = "bilinear"
    """"bilinear" (the bundled prior) or "eg3d_fir" (EG3D's own, for imported weights); see layers.UPSAMPLING."""
    conv_clamp: float | None = None
    """EG3D's activation clamp of synthesis layers (its released models state it in their kwargs)."""
    decoder_hidden: int = 64
    decoder_features: int = 32
    decoder_lr_multiplier: float = 1.0
    render: RenderConfig = field(default_factory=RenderConfig)
    superresolution: SuperResolutionConfig | None = None
    """EG3D's picture network (imported generators that have one); None: pictures are the neural render."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorConfig":
        if not isinstance(data, dict):
            raise ValueError("the generator config is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        values = dict(data)
        for f in dataclasses.fields(cls):
            if f.type == "int" and f.name in values:
                value = values[f.name]
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1 << 20:
                    raise ValueError(f"{f.name} must be a whole number from 0 to {1 << 20}, not {str(value)[:40]!r}")
        if "render" in values:
            values["render"] = RenderConfig.from_dict(values["render"])
        if values.get("superresolution") is not None:
            values["superresolution"] = SuperResolutionConfig(**values["superresolution"])
        return cls(**values)


class TriPlaneField:
    """One generated head: its planes are fixed, points are decoded in chunks.

    Calling it with points (B, M, 3) returns {"sigma": (B, M, 1), "rgb": (B, M, 3),
    "features": (B, M, F)}, so it plugs straight into the VolumeRenderer.
    """

    def __init__(self, planes: Tensor, decoder: OSGDecoder, box_size: float = 1.0, chunk: int = 65536):
        self.planes = planes
        self.decoder = decoder
        self.box_size = box_size
        self.chunk = chunk

    @property
    def batch_size(self) -> int:
        return self.planes.shape[0]

    def __call__(self, points: Tensor) -> dict[str, Tensor]:
        if points.shape[1] <= self.chunk:
            return self.decoder.decode(sample_plane_mean(self.planes, points, self.box_size))
        pieces = [self.__call__(points[:, i : i + self.chunk]) for i in range(0, points.shape[1], self.chunk)]
        return {name: torch.cat([p[name] for p in pieces], dim=1) for name in pieces[0]}

    @torch.no_grad()
    def query(self, points: Tensor) -> dict[str, Tensor]:
        """Evaluate without gradients; points (M, 3) are applied to every head in the batch."""
        if points.dim() == 2:
            points = points.unsqueeze(0).expand(self.batch_size, -1, -1)
        return self(points)


class TriPlaneGenerator(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.synthesis = SynthesisNetwork(
            w_dim=config.w_dim,
            img_resolution=config.plane_resolution,
            img_channels=3 * config.plane_channels,
            channel_base=config.channel_base,
            channel_max=config.channel_max,
            use_noise=config.use_noise,
            upsampling=config.upsampling,
            conv_clamp=config.conv_clamp,
        )
        self.mapping = MappingNetwork(
            config.z_dim,
            config.c_dim,
            config.w_dim,
            self.synthesis.num_ws,
            num_layers=config.mapping_layers,
            lr_multiplier=config.mapping_lr_multiplier,
        )
        self.decoder = OSGDecoder(config.plane_channels, config.decoder_hidden, config.decoder_features, config.decoder_lr_multiplier)
        self.noise_mode = "const"
        """How the plane synthesis draws its per-pixel noise when a call does not say: EG3D's modes,
        "const" (the stored noise, the same head every time), "random" (fresh noise each call) or "none"."""
        self.superresolution = None
        if config.superresolution is not None:
            self.superresolution = SuperResolution(config.superresolution, config.decoder_features, config.w_dim, config.upsampling)

    @property
    def num_ws(self) -> int:
        return self.synthesis.num_ws

    def map(self, z: Tensor | None, c: Tensor | None, **kwargs) -> Tensor:
        if c is not None and self.config.conditioning_scale != 1.0:
            c = c * self.config.conditioning_scale
        return self.mapping(z, c, **kwargs)

    def planes(self, ws: Tensor, noise_mode: str | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) -> planes (B, 3, C, R, R)."""
        image = self.synthesis(ws, noise_mode=noise_mode or self.noise_mode)
        return image.reshape(ws.shape[0], 3, self.config.plane_channels, *image.shape[-2:])

    def field(self, ws: Tensor, noise_mode: str | None = None) -> TriPlaneField:
        return TriPlaneField(self.planes(ws, noise_mode), self.decoder, self.config.render.box_size)

    def super_resolve(self, rendered: dict[str, Tensor], ws: Tensor) -> Tensor:
        """The picture of a neural render that has "features" and "opacity": (B, 3, S, S) in [0, 1]."""
        if self.superresolution is None:
            raise ValueError("this generator has no super-resolution network")
        features = feature_image(rendered, white_back=self.config.render.background is not None)
        return (self.superresolution(features, ws) + 1) / 2
