"""Writing pictures: tensors in [0, 1] to PNG/GIF files, and side-by-side sheets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor


def to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) or (1, H, W) in [0, 1] -> PIL image."""
    array = (image.detach().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)


MAX_IMAGE_PIXELS = 40_000_000
"""Larger pictures are refused before they are decoded (a 20000^2 PNG would take 4.8 GB as floats)."""


def load_image(path: Path) -> Tensor:
    """An image file -> (3, H, W) float in [0, 1]; unreadable files raise BridgeError."""
    from bridge.errors import BridgeError

    try:
        with open(path, "rb") as handle:
            return decode_image(handle, f"the image {path}")
    except FileNotFoundError:
        raise BridgeError(f"No image at {path}; check the path.") from None
    except IsADirectoryError:
        raise BridgeError(f"{path} is a folder, not an image; give a PNG or JPEG file.") from None


def decode_image(data, what: str = "the picture") -> Tensor:
    """An image file's bytes (or a binary file object) -> (3, H, W) float in [0, 1]; anything
    that is not a picture of a sensible size raises BridgeError naming `what`."""
    from bridge.errors import BridgeError

    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise BridgeError(
                    f"{what.capitalize()} is {image.width} x {image.height} pixels; use one of at most {MAX_IMAGE_PIXELS // 10**6} megapixels."
                )
            if min(image.width, image.height) < 8:
                raise BridgeError(f"{what.capitalize()} is {image.width} x {image.height} pixels; use one at least 8 pixels on each side.")
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except Image.DecompressionBombError:
        raise BridgeError(f"{what.capitalize()} declares more pixels than any picture needs; use a smaller one.") from None
    except UnidentifiedImageError:
        empty = source.seek(0, io.SEEK_END) == 0 if source.seekable() else False
        reason = "it is empty" if empty else "not a picture format PIL knows"
        raise BridgeError(f"Cannot read {what} ({reason}); use a PNG or JPEG file.") from None
    except (OSError, ValueError, SyntaxError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise BridgeError(f"Cannot read {what} ({reason}); use a PNG or JPEG file.") from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


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
