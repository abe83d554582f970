"""The image encoder of one generator: a picture of a head -> its latent w and the camera's yaw and pitch.

A small convolutional network (pSp / e4e in spirit, sized for 2 CPU cores) trained once on the
generator's own renders (`bridge.invert.trainer`): random heads from random views in front of
random background colours, so the training data is free and the same command serves a user's
EG3D generator. It answers one w (EG3D's mapping network gives every level the same w; the
refinement may then move each level on its own) and the view it thinks the picture was taken from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from bridge.errors import BridgeError
from bridge.invert.align import FaceFraming
from bridge.model_files import read_metadata, write_model_folder

FORMAT = "text-edit/image-encoder"
FORMAT_VERSION = 1
TENSORS, METADATA = "encoder.safetensors", "encoder.json"
BUNDLED_ENCODER = Path(__file__).parent / "encoder"


class EncoderError(BridgeError):
    """An image encoder that is missing, damaged or made for another generator."""


@dataclass(frozen=True)
class EncoderConfig:
    w_dim: int
    num_ws: int
    resolution: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)
    hidden: int = 512
    yaw_range: float = 40.0
    pitch_range: float = 12.0
    """The views it was trained on (degrees either side of the front); its pose answer stays inside."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderConfig":
        return cls(**{**data, "channels": tuple(data["channels"])})


def check_crop(crop: tuple[int, int, int], size: tuple[int, int]) -> None:
    """Refuses, in one sentence, a crop (left, top, side) that is not a square of at least 8 pixels
    inside a picture of `size` (width, height)."""
    left, top, side = (int(v) for v in crop)
    width, height = size
    if side < 8 or left < 0 or top < 0 or left + side > width or top + side > height:
        raise BridgeError(
            f"The crop (left {left}, top {top}, size {side}) must be a square of at least 8 pixels inside the {width} x {height} picture."
        )


def scaled_crop(crop: tuple[int, int, int], scale: float, height_width: tuple[int, int]) -> tuple[int, int, int]:
    """A crop in one picture's pixels -> the same square in a copy `scale` times its size
    (height_width), kept inside it and at least 8 pixels where the copy allows."""
    height, width = (int(v) for v in height_width)
    side = min(max(round(crop[2] * scale), 8), height, width)
    left = min(max(round(crop[0] * scale), 0), width - side)
    top = min(max(round(crop[1] * scale), 0), height - side)
    return left, top, side


def square_picture(image: Tensor, resolution: int, crop: tuple[int, int, int] | None = None) -> Tensor:
    """A picture (3, H, W) in [0, 1] -> (3, resolution, resolution): the square `crop` (left, top,
    size in pixels; default the centred square), resized with antialiasing."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise BridgeError("A picture must be an RGB image.")
    height, width = image.shape[-2:]
    if crop is None:
        size = min(height, width)
        left, top = (width - size) // 2, (height - size) // 2
    else:
        check_crop(crop, (width, height))
        left, top, size = (int(v) for v in crop)
    square = image[:, top : top + size, left : left + size]
    return F.interpolate(square[None].float(), size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)[
        0
    ].clamp(0, 1)


class ImageEncoder(nn.Module):
    """pictures (B, 3, R, R) in [0, 1] -> w (B, w_dim) and pose (B, 2): yaw and pitch in degrees."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [nn.Conv2d(3, config.channels[0], 3, padding=1), nn.LeakyReLU(0.2)]
        previous = config.channels[0]
        for channels in config.channels:
            layers += [
                nn.Conv2d(previous, channels, 3, stride=2, padding=1),
                nn.GroupNorm(8, channels),
                nn.LeakyReLU(0.2),
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
            previous = channels
        self.features = nn.Sequential(*layers)
        side = config.resolution // 2 ** len(config.channels)
        self.hidden = nn.Linear(previous * side * side, config.hidden)
        self.w = nn.Linear(config.hidden, config.w_dim)
        self.pose = nn.Linear(config.hidden, 2)
        self.register_buffer("w_mean", torch.zeros(config.w_dim))
        self.register_buffer("w_std", torch.ones(config.w_dim))
        """w's spread over the generator's heads: the network answers in these units."""
        self.info: dict = {}
        """What its file says besides the tensors: the generator, the training, the face framing."""

    def forward(self, pictures: Tensor) -> tuple[Tensor, Tensor]:
        x = self.features(pictures * 2 - 1)
        x = F.leaky_relu(self.hidden(x.flatten(1)), 0.2)
        scale = torch.tensor([self.config.yaw_range, self.config.pitch_range], device=x.device)
        return self.w_mean + self.w(x) * self.w_std, torch.tanh(self.pose(x)) * scale

    @property
    def face_framing(self) -> FaceFraming | None:
        """Where a face detector finds faces in the generator's frontal renders (None: not reliably)."""
        return FaceFraming.from_dict(self.info.get("face_framing"))

    def normalised_w(self, w: Tensor) -> Tensor:
        return (w - self.w_mean) / self.w_std

    @torch.no_grad()
    def encode(self, picture: Tensor, crop: tuple[int, int, int] | None = None) -> tuple[Tensor, float, float]:
        """A picture (3, H, W) in [0, 1] -> ws (num_ws, w_dim), yaw and pitch (degrees)."""
        device = self.w_mean.device
        w, pose = self(square_picture(picture, self.config.resolution, crop)[None].to(device))
        return w[0, None].expand(self.config.num_ws, -1).contiguous(), float(pose[0, 0]), float(pose[0, 1])

    # --- files -------------------------------------------------------------------------------

    def save(self, folder: Path, generator_sha256: str, info: dict) -> Path:
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "generator_sha256": generator_sha256,
        }
        return write_model_folder(folder, TENSORS, METADATA, self, {**metadata, **info})

    @classmethod
    def load(
        cls, folder: Path = BUNDLED_ENCODER, generator_sha256: str | None = None, device: str | torch.device = "cpu"
    ) -> "ImageEncoder":
        folder = Path(folder)
        hint = "train one with `python -m bridge train-encoder`"
        metadata = read_metadata(folder, METADATA, TENSORS, FORMAT, FORMAT_VERSION, generator_sha256, EncoderError, hint)
        try:
            model = cls(EncoderConfig.from_dict(metadata["config"]))
            model.load_state_dict(load_file(str(folder / TENSORS)))
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError, OSError) as error:
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise EncoderError(f"The image encoder in {folder} cannot be read ({reason}); {hint}.") from None
        model.info = {k: v for k, v in metadata.items() if k not in {"format", "format_version", "config", "sha256"}}
        return model.to(device).eval().requires_grad_(False)
