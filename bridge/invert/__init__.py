"""A head from one picture: the image encoder's answer, then a bounded refinement (3DPE's input).

`head_from_picture` is what the command line (`head-from-image`) and the bridge's heads endpoint
call; `bridge.invert.trainer` trains the encoder of a generator once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from bridge.errors import BridgeError
from bridge.images import Picture
from bridge.invert.align import face_crop
from bridge.invert.encoder import ImageEncoder, check_crop, scaled_crop, square_picture
from bridge.invert.refine import CLIP_WEIGHT, MAX_REFINE_STEPS, RefineProgress, refine_latent


def head_from_picture(
    source,
    encoder: ImageEncoder,
    picture: Tensor | Picture,
    crop: tuple[int, int, int] | None = None,
    yaw: float | None = None,
    pitch: float | None = None,
    refine_steps: int = 0,
    clip=None,
    clip_weight: float = CLIP_WEIGHT,
    on_progress: Callable[[RefineProgress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[Tensor, dict]:
    """A picture ((3, H, W) in [0, 1], or a decoded file) -> ws (num_ws, w_dim) and the head's
    description: the picture by hash, the crop in the file's pixels (given; else, when the encoder knows its generator's face framing, around
    the detected face; else the centred square), the view (the encoder's unless
    given) and the refinement's figures."""
    if not 0 <= int(refine_steps) <= MAX_REFINE_STEPS:
        raise BridgeError(f"The refinement takes 0 to {MAX_REFINE_STEPS} steps, not {refine_steps}.")
    for name, value, limit in (("yaw", yaw, 90.0), ("pitch", pitch, 45.0)):
        if value is not None and not (np.isfinite(value) and abs(value) <= limit):
            raise BridgeError(f"The picture's {name} must be a number of degrees within +-{limit:g}, not {value}.")
    if not isinstance(picture, Picture):
        picture = Picture.of(picture)
    crop_from = "given" if crop is not None else "centred square"
    if crop is not None:
        check_crop(crop, picture.size)
        working_crop = scaled_crop(crop, picture.scale, picture.pixels.shape[-2:])
    else:
        working_crop = face_crop(picture.pixels, encoder.face_framing) if encoder.face_framing is not None else None
        if encoder.face_framing is not None:
            crop_from = "face detector" if working_crop is not None else "centred square (no face found)"
        if working_crop is not None:
            crop = scaled_crop(working_crop, 1 / picture.scale, picture.size[::-1])
    square = square_picture(picture.pixels, encoder.config.resolution, working_crop)
    ws, encoded_yaw, encoded_pitch = encoder.encode(square)
    guessed_view = yaw is None and pitch is None
    view_yaw = encoded_yaw if yaw is None else float(yaw)
    view_pitch = encoded_pitch if pitch is None else float(pitch)
    description = {
        "source": "picture",
        "picture_sha256": picture.sha256,
        "picture_size": list(picture.size),
        "crop": list(crop) if crop is not None else None,
        "crop_from": crop_from,
        "yaw": round(view_yaw, 2),
        "pitch": round(view_pitch, 2),
        "view_from": "encoder" if guessed_view else "given",
    }
    if refine_steps:
        with torch.enable_grad():
            ws, figures = refine_latent(
                source,
                ws,
                square,
                view_yaw,
                view_pitch,
                refine_steps,
                encoder.w_std,
                clip=clip,
                clip_weight=clip_weight,
                on_progress=on_progress,
                should_stop=should_stop,
                fit_view=guessed_view,
            )
        description.update(figures)
        if guessed_view:
            description["view_from"] = "encoder, fitted"
    return ws.contiguous(), description
