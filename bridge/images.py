"""Pictures: image files read as tensors in [0, 1] (with the file's size and pixel hash), tensors
written as PNG/GIF files, side-by-side sheets and heat-map overlays."""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor


def to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) or (1, H, W) in [0, 1] -> PIL image."""
    array = (image.detach().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)


MAX_IMAGE_PIXELS = 40_000_000
"""Larger pictures are refused before they are decoded (a 20000^2 PNG would take 4.8 GB as floats)."""
MAX_ASPECT = 16
"""Pictures longer than this many times their width (or wider than tall) are refused: a head fills
a square, and an 8 x 5,000,000 strip would pass the pixel limit yet never shrink (its short side
stays >= 8), 460 MB as floats."""
PICTURE_SIDE = 2048
"""Pictures are worked on with their longer side at most this many pixels (a 40 MP photo as floats
is 480 MB; a head is made from a square of a few hundred pixels)."""
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
"""PIL's notes on odd EXIF tags and short files are not for users (set once: catch_warnings is not thread-safe)."""
_DECODING = threading.BoundedSemaphore(2)
"""Decodes at once: each holds the file's full 8-bit pixels for a moment (120 MB at 40 MP)."""


@dataclass(frozen=True)
class Picture:
    """A decoded picture at working size, with what names the file's own pixels, so that provenance
    and crops refer to the file and not to the working copy."""

    pixels: Tensor
    """(3, h, w) float in [0, 1], the longer side at most PICTURE_SIDE."""
    size: tuple[int, int]
    """The file's width and height in pixels."""
    sha256: str
    """`pixel_sha256` of the file's pixels at their own size."""

    @classmethod
    def of(cls, image: Tensor) -> "Picture":
        """A picture already in memory, at its own size."""
        return cls(image, (int(image.shape[-1]), int(image.shape[-2])), pixel_sha256(image))

    @property
    def scale(self) -> float:
        """Working pixels per file pixel (1 unless the file was larger than PICTURE_SIDE)."""
        return self.pixels.shape[-1] / self.size[0]


def pixel_sha256(image: Tensor) -> str:
    """The hash of a picture's pixels (3, H, W) at 8 bits, channel by channel."""
    pixels = (image.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return _channels_sha256([channel.tobytes() for channel in pixels], pixels.shape)


def _channels_sha256(channels: list[bytes], shape: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    for channel in channels:
        digest.update(channel)
    digest.update(str(tuple(shape)).encode())
    return digest.hexdigest()


def load_image(path: Path, max_side: int | None = None) -> Tensor:
    """An image file -> (3, H, W) float in [0, 1] (shrunk to `max_side` if given); unreadable
    files raise BridgeError."""
    return load_picture(path, max_side).pixels


def load_picture(path: Path, max_side: int | None = PICTURE_SIDE) -> Picture:
    """An image file -> Picture; unreadable files raise BridgeError."""
    from bridge.errors import BridgeError

    if Path(path).exists() and not Path(path).is_file() and not Path(path).is_dir():  # a pipe or device would block or never end
        raise BridgeError(f"{path} is not a regular file; give a PNG or JPEG file.")
    try:
        with open(path, "rb") as handle:
            return decode_picture(handle, f"the image {path}", max_side)
    except FileNotFoundError:
        raise BridgeError(f"No image at {path}; check the path.") from None
    except IsADirectoryError:
        raise BridgeError(f"{path} is a folder, not an image; give a PNG or JPEG file.") from None


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says (a phone photo keeps its rotation apart from
    its pixels); a damaged EXIF block is metadata, so the picture is then taken as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 -- struct.error, KeyError, ... from a damaged EXIF block
        return image


def _as_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB as a viewer shows it: deeper greyscale scaled (PIL's own convert
    clips a 16-bit PNG to white), transparency laid over white (the renders' background)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16"):
            peak = 65535.0
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            peak = 1.0
        else:
            peak = 255.0 if values.max(initial=0) <= 255 else 65535.0
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def decode_picture(data, what: str = "the picture", max_side: int | None = PICTURE_SIDE) -> Picture:
    """An image file's bytes (or a binary file object) -> Picture, shrunk by an integer factor
    (box filter) until its longer side is at most `max_side`; anything that is not a picture of a
    sensible size raises BridgeError naming `what`."""
    from bridge.errors import BridgeError

    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with _DECODING, Image.open(source) as image:
            picture = _working_copy(image, what, max_side)
    except Image.DecompressionBombError:
        raise BridgeError(f"{what.capitalize()} declares more pixels than any picture needs; use a smaller one.") from None
    except UnidentifiedImageError:
        empty = source.seek(0, io.SEEK_END) == 0 if source.seekable() else False
        reason = "it is empty" if empty else "not a picture format PIL knows"
        raise BridgeError(f"Cannot read {what} ({reason}); use a PNG or JPEG file.") from None
    except (OSError, ValueError, SyntaxError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise BridgeError(f"Cannot read {what} ({reason}); use a PNG or JPEG file.") from None
    return picture


def _working_copy(image: Image.Image, what: str, max_side: int | None) -> Picture:
    from bridge.errors import BridgeError

    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise BridgeError(
            f"{what.capitalize()} is {image.width} x {image.height} pixels; use one of at most {MAX_IMAGE_PIXELS // 10**6} megapixels."
        )
    if min(image.width, image.height) < 8:
        raise BridgeError(f"{what.capitalize()} is {image.width} x {image.height} pixels; use one at least 8 pixels on each side.")
    if max(image.width, image.height) > MAX_ASPECT * min(image.width, image.height):
        raise BridgeError(
            f"{what.capitalize()} is {image.width} x {image.height} pixels, too long and thin for a head; "
            f"crop it to at most {MAX_ASPECT}:1, a square around the face is best."
        )
    rgb = _as_rgb(_upright(image))
    size = rgb.size
    sha256 = _channels_sha256([rgb.getchannel(band).tobytes() for band in range(3)], (3, size[1], size[0]))
    factor = max(1, min(-(-max(size) // max_side), min(size) // 8)) if max_side else 1  # the shorter side stays >= 8
    if factor > 1:
        rgb = rgb.reduce(factor)
    pixels = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).float().div_(255.0)
    return Picture(pixels, size, sha256)


def save_png(image: Tensor, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(path)
    return path


def sheet(images: list[Tensor], columns: int | None = None, gap: int = 2) -> Tensor:
    """Tile equally sized (3, H, W) images into one picture on a white background."""
    columns = columns or len(images)
    rows = (len(images) + columns - 1) // columns
    _, height, width = images[0].shape
    canvas = torch.ones(3, rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        canvas[:, r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = image
    return canvas


def heatmap(values: Tensor) -> Tensor:
    """A [0, 1] map (H, W) as a picture (3, H, W): black -> red -> yellow."""
    return torch.stack([(2 * values).clamp(0, 1), (2 * values - 1).clamp(0, 1), torch.zeros_like(values)])


def overlay(image: Tensor, values: Tensor, opacity: float = 0.6) -> Tensor:
    """`image` (3, H, W) with a [0, 1] map (H, W) laid over it in heat-map colours."""
    return (1 - opacity * values) * image + opacity * values * heatmap(values)


def save_gif(frames: list[Tensor], path: Path, frame_ms: int = 80) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = [to_pil(frame) for frame in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return path
