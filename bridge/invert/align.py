"""Framing a photo the way the generator frames its heads (FFHQ-style alignment, by a face box).

EG3D's generators are trained on FFHQ crops, aligned from face landmarks; a photo cropped any
other way gives the encoder a head it never saw. The face detector is the one whose weights ship
inside a package the project already needs: scikit-image's LBP frontal-face cascade (OpenCV's
trained cascade, `skimage.data.lbp_frontal_face_cascade_filename`). It finds a box, not landmarks,
so the crop is calibrated rather than computed from eye and mouth positions: when an encoder is
trained, the same detector is run on the generator's own frontal renders, and where it finds the
face there (centre and size as fractions of the frame, `FaceFraming`) is stored with the encoder.
A photo's face box is then mapped onto that framing. A generator whose faces the detector does
not find (the bundled procedural prior: a face in 1 of its 32 frontal renders) has no framing, and
its photos take the user's crop or the centred square.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

DETECT_SIDE = 512
"""Pictures are resized so their longer side is this many pixels before the detector runs (its
window starts at 24 pixels; small renders are enlarged, big photos made quick)."""
MIN_FACE_FRACTION = 0.06
"""The smallest face searched for, as a fraction of the picture's shorter side."""
MIN_FACE_PIXELS = 16
"""...and in the picture's own pixels: an enlarged small picture shows the cascade faces in noise."""
MIN_WINDOW = 24
"""The cascade's own window, in pixels."""
FACE_SIDE = 96
"""The size (pixels) a found face is measured again at."""
CONTEXT = 2.5
"""The square around a found face (in face sizes) that it is measured again in."""
NEIGHBOURS = 5
"""Overlapping detections a face needs (fewer let patterns on clothes through, on the astronaut)."""
MIN_FOUND_FRACTION = 0.6
"""A framing is measured only when faces are found in this share of the generator's renders..."""
MAX_SIZE_SPREAD = 0.25
"""...and their sizes agree: interquartile range over median at most this."""
LUMA = (0.2125, 0.7154, 0.0721)


@dataclass(frozen=True)
class FaceBox:
    """A detected face in a picture's pixels: centre and side."""

    centre_x: float
    centre_y: float
    size: float


@dataclass(frozen=True)
class FaceFraming:
    """Where the detector finds the face in the generator's frontal renders, in fractions of the frame."""

    centre_x: float
    centre_y: float
    size: float
    found: int
    renders: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> "FaceFraming | None":
        try:
            framing = cls(**{k: data[k] for k in ("centre_x", "centre_y", "size", "found", "renders")})
        except (KeyError, TypeError):
            return None
        numbers = (framing.centre_x, framing.centre_y, framing.size)
        if not all(isinstance(v, (int, float)) and 0 < v < 2 for v in numbers):
            return None
        return framing


@cache
def _detector():
    from skimage import data
    from skimage.feature import Cascade

    return Cascade(data.lbp_frontal_face_cascade_filename())


def _detect(picture: Tensor, scale: float, smallest: int, largest: int) -> list[FaceBox]:
    """The faces the cascade finds in a picture (3, H, W) resized by `scale`, in the picture's pixels."""
    height, width = picture.shape[-2:]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    largest = min(largest, *size)
    if smallest > largest:
        return []
    resized = F.interpolate(picture[None].float(), size=size, mode="bilinear", antialias=scale < 1, align_corners=False)[0]
    grey = (resized.clamp(0, 1) * torch.tensor(LUMA)[:, None, None]).sum(dim=0).numpy()
    found = _detector().detect_multi_scale(
        img=grey, scale_factor=1.1, step_ratio=1, min_size=(smallest, smallest), max_size=(largest, largest), min_neighbor_number=NEIGHBOURS
    )
    return [
        FaceBox((d["c"] + d["width"] / 2) / scale, (d["r"] + d["height"] / 2) / scale, (d["width"] + d["height"]) / 2 / scale)
        for d in found
    ]


def _measured_again(picture: Tensor, box: FaceBox) -> FaceBox | None:
    """A found face measured again in the square around it, resized so the face is FACE_SIDE pixels."""
    half = round(CONTEXT * box.size / 2)
    left, top = max(0, round(box.centre_x) - half), max(0, round(box.centre_y) - half)
    region = picture[:, top : round(box.centre_y) + half, left : round(box.centre_x) + half]
    again = _detect(region, FACE_SIDE / box.size, round(FACE_SIDE / 1.5), round(FACE_SIDE * 1.5))
    if not again:
        return None
    nearest = min(again, key=lambda b: (b.centre_x + left - box.centre_x) ** 2 + (b.centre_y + top - box.centre_y) ** 2)
    return FaceBox(nearest.centre_x + left, nearest.centre_y + top, nearest.size)


def find_face(picture: Tensor) -> FaceBox | None:
    """The largest face in a picture (3, H, W) in [0, 1], or None. Candidates are found at
    DETECT_SIDE, then each is measured again with the face at FACE_SIDE pixels: the cascade's box
    depends on the size it sees a face at (a render and a photo of one face must give one framing),
    and a candidate not found again is dropped."""
    height, width = picture.shape[-2:]
    scale = DETECT_SIDE / max(height, width)
    candidates = _detect(picture, scale, max(MIN_WINDOW, round(MIN_FACE_FRACTION * min(height, width) * scale)), DETECT_SIDE)
    candidates = [c for c in candidates if c.size >= MIN_FACE_PIXELS]
    confirmed = [box for box in (_measured_again(picture, c) for c in candidates) if box is not None]
    return max(confirmed, key=lambda b: b.size, default=None)


def measure_framing(renders: Tensor) -> FaceFraming | None:
    """Frontal renders (N, 3, R, R) of the generator -> where their faces are, or None when the
    detector does not find them reliably (see MIN_FOUND_FRACTION, MAX_SIZE_SPREAD)."""
    side = renders.shape[-1]
    boxes = [box for box in (find_face(picture) for picture in renders) if box is not None]
    if len(boxes) < MIN_FOUND_FRACTION * len(renders) or len(boxes) < 2:
        return None
    sizes = sorted(b.size / side for b in boxes)
    quartiles = statistics.quantiles(sizes, n=4)
    if (quartiles[2] - quartiles[0]) / statistics.median(sizes) > MAX_SIZE_SPREAD:
        return None
    return FaceFraming(
        centre_x=statistics.median(b.centre_x / side for b in boxes),
        centre_y=statistics.median(b.centre_y / side for b in boxes),
        size=statistics.median(sizes),
        found=len(boxes),
        renders=len(renders),
    )


def face_crop(picture: Tensor, framing: FaceFraming) -> tuple[int, int, int] | None:
    """The square (left, top, size) of a picture (3, H, W) that frames its face as the generator
    frames its own, moved and shrunk to stay inside the picture; None when no face is found."""
    box = find_face(picture)
    if box is None:
        return None
    height, width = picture.shape[-2:]
    side = min(round(box.size / framing.size), height, width)
    left = round(box.centre_x - framing.centre_x * side)
    top = round(box.centre_y - framing.centre_y * side)
    return min(max(left, 0), width - side), min(max(top, 0), height - side), side
