"""Face framing: scikit-image's bundled face detector on a real photo, calibrated on renders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from skimage import data

from bridge.invert import head_from_picture
from bridge.invert.align import FaceFraming, face_crop, find_face, measure_framing
from bridge.invert.encoder import ImageEncoder
from bridge.prior.model import HeadPrior


def _picture(array) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


def _resized(picture: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(picture[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0]


ASTRONAUT = _picture(data.astronaut())
FRAME = (90, 0, 380)
"""The astronaut's square the 'generator' frames its heads with: left, top, side."""


def _renders() -> torch.Tensor:
    """Stand-ins for a generator's frontal renders: the same face in the same frame, a few pixels apart."""
    left, top, side = FRAME
    shots = [ASTRONAUT[:, top + dy : top + dy + side, left + dx : left + dx + side] for dx, dy in ((0, 0), (4, 2), (-4, 3), (2, 5))]
    return torch.stack([_resized(s, 128, 128) for s in shots])


def test_the_detector_finds_the_astronauts_face_and_nothing_in_pictures_without_faces():
    box = find_face(ASTRONAUT)
    assert box is not None
    assert 170 < box.centre_x < 270 and 60 < box.centre_y < 180 and 60 < box.size < 140
    for name in ("coffee", "rocket", "chelsea"):
        assert find_face(_picture(getattr(data, name)())) is None, name
    assert find_face(torch.full((3, 200, 300), 0.5)) is None
    assert find_face(torch.rand(3, 16, 16)) is None  # too small to hold a face the detector can see


def test_a_photo_is_cropped_to_the_framing_measured_on_the_renders():
    framing = measure_framing(_renders())
    assert framing is not None and framing.found == 4
    assert FaceFraming.from_dict(framing.to_dict()) == framing

    scale, at_x, at_y = 1.3, 210, 120
    photo = torch.full((3, 1000, 1100), 0.3)
    pasted = _resized(ASTRONAUT, round(512 * scale), round(512 * scale))
    photo[:, at_y : at_y + pasted.shape[1], at_x : at_x + pasted.shape[2]] = pasted
    left, top, side = face_crop(photo, framing)
    wanted_left, wanted_top, wanted_side = at_x + scale * FRAME[0], at_y + scale * FRAME[1], scale * FRAME[2]
    assert abs(side - wanted_side) < 0.12 * wanted_side
    assert abs(left - wanted_left) < 0.08 * wanted_side and abs(top - wanted_top) < 0.08 * wanted_side


def test_renders_without_findable_faces_give_no_framing_and_photos_then_take_the_centred_square():
    prior = HeadPrior.load()
    assert measure_framing(torch.rand(6, 3, 64, 64)) is None
    assert FaceFraming.from_dict(None) is None and FaceFraming.from_dict({"centre_x": "x"}) is None

    encoder = ImageEncoder.load(generator_sha256=prior.sha256)
    assert encoder.face_framing is None  # measured when it was trained: the procedural faces are found in too few renders
    _, description = head_from_picture(prior, encoder, ASTRONAUT)
    assert description["crop_from"] == "centred square" and description["crop"] is None

    encoder.info = {**encoder.info, "face_framing": measure_framing(_renders()).to_dict()}
    _, description = head_from_picture(prior, encoder, ASTRONAUT)
    assert description["crop_from"] == "face detector"
    left, top, side = description["crop"]
    assert 0 <= left and 0 <= top and left + side <= 512 and top + side <= 512
    _, description = head_from_picture(prior, encoder, ASTRONAUT, crop=(0, 0, 256))
    assert description["crop_from"] == "given" and description["crop"] == [0, 0, 256]
