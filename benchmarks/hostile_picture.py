"""Hostile and odd picture files, for benchmarks.hostile's picture group: each must give a head or
one sentence through `head-from-image`, with memory bounded by the working copy, not the file.

    for name, path, must_refuse in hostile_picture_files(folder): ...
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost none (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _saved(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def _face(size: int = 256) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size, size))


def hostile_picture_files(folder: Path) -> list[tuple[str, Path, bool]]:
    """(name, path, must_refuse) of every case, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    face = _face()
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "Camera"
    photo = _saved(face, "JPEG", exif=exif.tobytes())
    damaged = bytearray(photo)
    for offset in range(24, 60, 3):  # inside the EXIF block
        damaged[offset] ^= 0xA5
    ramp = np.linspace(0, 65535, 512 * 512).reshape(512, 512).astype(np.uint16)
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[64:192, 64:192] = (200, 40, 40, 255)
    frames = [face.convert("P").resize((64, 64))] * 300
    cases: list[tuple[str, bytes, bool]] = [
        ("empty_file.png", b"", True),
        ("text_file.png", b"this is a text file, not a picture\n" * 20, True),
        ("header_20000_squared.png", png_header_only(20000, 20000), True),
        ("header_8_by_6000000.png", png_header_only(8, 6_000_000), True),
        ("truncated.jpg", photo[: len(photo) // 3], True),
        ("tiny_4_by_4.png", _saved(Image.new("RGB", (4, 4)), "PNG"), True),
        (
            "greyscale_6000_squared.png",
            _saved(Image.fromarray((np.indices((6000, 6000)).sum(0) % 256).astype(np.uint8), "L"), "PNG"),
            False,
        ),
        ("exif_orientation_6.jpg", photo, False),
        ("exif_damaged.jpg", bytes(damaged), False),
        ("sixteen_bit_grey.png", _saved(Image.fromarray(ramp), "PNG"), False),
        ("see_through_background.png", _saved(Image.fromarray(rgba), "PNG"), False),
        ("palette_see_through.png", _saved(face.convert("P"), "PNG", transparency=0), False),
        ("cmyk.jpg", _saved(face.convert("CMYK"), "JPEG"), False),
        ("thin_8_by_20000.png", _saved(Image.new("RGB", (20000, 8), (120, 90, 60)), "PNG"), True),
        ("header_8_by_4990000.png", png_header_only(4_990_000, 8), True),
        ("long_16_to_1.png", _saved(Image.new("RGB", (2048, 128), (120, 90, 60)), "PNG"), False),
        ("animated_300_frames.gif", _saved(frames[0], "GIF", save_all=True, append_images=frames[1:]), False),
    ]
    files = []
    for name, content, must_refuse in cases:
        path = folder / name
        path.write_bytes(content)
        files.append((name, path, must_refuse))
    return files
