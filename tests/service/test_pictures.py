"""Heads from pictures through the bridge: at once (the encoder) or as a refining job, then edited;
a picture photo no one here made (scikit-image's astronaut), and pictures that are not pictures."""

import base64
import io
import struct
import zlib

import numpy as np
from PIL import Image
from skimage import data


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost none (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_photo_becomes_a_head_that_edits_like_any_other(bridge):
    bridge.start()
    astronaut = _png(data.astronaut()[::2, ::2])
    status, head = bridge.call("POST", "/v1/heads/from-picture", {"picture": _b64(astronaut), "crop": [40, 0, 180]})
    assert status == 201, head
    assert head["source"] == "picture" and len(head["picture_sha256"]) == 64 and head["crop"] == [40, 0, 180]
    assert -40 <= head["yaw"] <= 40 and head["view_from"] == "encoder"
    status, again = bridge.call("POST", "/v1/heads/from-picture", {"picture": _b64(astronaut), "yaw": 0.0, "pitch": 0.0})
    assert status == 201 and again["picture_sha256"] == head["picture_sha256"] and again["view_from"] == "given"

    status, job = bridge.call("POST", "/v1/jobs/head", {"picture": _b64(astronaut), "refine": 2})
    assert status == 202, job
    assert job["request"]["picture"].startswith("sha256:"), "the job lists the picture's hash, not its bytes"
    job = bridge.wait(job["id"])
    assert job["state"] == "done", job
    refined = job["info"]["head"]
    assert refined["refine_steps"] == 2 and "input_view_psnr_db" in refined
    assert len(job["info"]["latent"]) == 12 and len(job["info"]["latent"][0]) == 256
    status, preview = bridge.call("GET", f"/v1/jobs/{job['id']}/results/preview.png")
    assert status == 200 and preview[:8] == b"\x89PNG\r\n\x1a\n"

    status, edit = bridge.call("POST", "/v1/jobs/edit", {"head": refined["id"], "steps": [{"module": "blue_eyes"}], "grid": 64})
    assert status == 202, edit
    edit = bridge.wait(edit["id"])
    assert edit["state"] == "done", edit


def test_what_is_not_a_picture_gets_one_sentence(bridge):
    bridge.start()
    cases = {
        "empty file": _b64(b""),
        "not base64": "this is not base64 at all!",
        "text": _b64(b"hello, I am not a picture"),
        "truncated png": _b64(_png(np.zeros((64, 64, 3), np.uint8))[:40]),
        "20000^2 png": _b64(_huge_png_header(20000, 20000)),
        "1x1 png": _b64(_png(np.zeros((1, 1, 3), np.uint8))),
    }
    for name, picture in cases.items():
        for path in ("/v1/heads/from-picture", "/v1/jobs/head"):
            status, answer = bridge.call("POST", path, {"picture": picture})
            assert status in (400, 422), (name, path, status, answer)
            if status == 400:
                assert isinstance(answer["detail"], str) and "\n" not in answer["detail"] and len(answer["detail"]) < 200, (name, answer)
    status, answer = bridge.call(
        "POST", "/v1/heads/from-picture", {"picture": _b64(_png(np.zeros((64, 64, 3), np.uint8))), "crop": [50, 50, 40]}
    )
    assert status == 400 and "crop" in answer["detail"]
    status, answer = bridge.call("POST", "/v1/jobs/head", {"picture": _b64(_png(np.zeros((64, 64, 3), np.uint8))), "refine": 10_000})
    assert status == 422
