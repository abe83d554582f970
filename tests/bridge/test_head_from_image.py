"""A head from one picture on the command line: the encoder, the refinement, the head file, an edit
of it; and pictures that are not pictures."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from benchmarks.hostile_picture import png_header_only
from bridge.errors import BridgeError
from bridge.head_file import read_head, write_head
from bridge.invert import head_from_picture
from bridge.invert.encoder import ImageEncoder, square_picture
from bridge.prior.model import PRIOR_RENDER, HeadCode, HeadPrior


def _bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=600)


def test_a_photo_becomes_a_head_file_that_the_edit_command_takes(tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(photo)
    head = tmp_path / "head.json"
    made = _bridge(
        "head-from-image", str(photo), "--out", str(head), "--refine", "2", "--crop", "100,0,380", "--preview", str(tmp_path / "p.png")
    )
    assert made.returncode == 0, made.stderr
    assert "refine: step 2/2" in made.stdout and (tmp_path / "p.png").is_file()
    document = json.loads(head.read_text())
    assert document["description"]["picture"] == "astronaut.jpg" and document["description"]["crop"] == [100, 0, 380]
    assert document["description"]["refine_steps"] == 2
    edited = _bridge("edit", "--head", str(head), "--module", "blue_eyes", "--grid", "64", "--out", str(tmp_path / "f.npz"))
    assert edited.returncode == 0, edited.stderr
    import mesh_export

    grid = mesh_export.read(tmp_path / "f.npz")
    assert grid.provenance["head_file"] == "head.json" and grid.provenance["head"]["source"] == "picture"


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("empty.png", b"", "empty"),
        ("notes.png", b"this is a text file", "not a picture"),
        ("huge.png", None, "pixels"),
    ],
)
def test_what_is_not_a_usable_picture_gets_one_sentence(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(png_header_only(20000, 20000) if content is None else content)
    result = _bridge("head-from-image", str(path), "--out", str(tmp_path / "h.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (tmp_path / "h.json").exists()


def test_the_encoder_reads_a_prior_head_back_from_its_own_picture():
    prior = HeadPrior.load()
    encoder = ImageEncoder.load(generator_sha256=prior.sha256)
    from bridge.field.renderer import render_orbit

    def picture(seed: int) -> torch.Tensor:
        code = HeadCode.from_seed(seed)
        with torch.no_grad():
            field = prior.generator.field(prior.ws(code.params[None], code.noise[None]))
            return render_orbit(field, PRIOR_RENDER, 25.0, 0.0, 64)["rgb"][0]

    ws_a, described = head_from_picture(prior, encoder, picture(11))
    ws_b, _ = head_from_picture(prior, encoder, picture(12))
    truth_a = prior.ws(HeadCode.from_seed(11).params[None], HeadCode.from_seed(11).noise[None])[0]
    assert 10 < described["yaw"] < 40, "the view it was taken from"
    assert (ws_a - truth_a).norm() < (ws_b - truth_a).norm(), "closer to its own head than to another"
    with pytest.raises(BridgeError, match="crop"):
        square_picture(picture(11), 64, (40, 40, 40))
    with pytest.raises(BridgeError, match="refinement"):
        head_from_picture(prior, encoder, picture(11), refine_steps=10_000)


def test_the_refinement_fits_a_guessed_view_and_keeps_a_given_one():
    from bridge.field.renderer import render_orbit
    from bridge.invert.refine import refine_latent

    prior = HeadPrior.load()
    encoder = ImageEncoder.load(generator_sha256=prior.sha256)
    code = HeadCode.from_seed(21)
    ws = prior.ws(code.params[None], code.noise[None])[0]
    with torch.no_grad():
        picture = render_orbit(prior.generator.field(ws[None]), PRIOR_RENDER, 10.0, 0.0, 48)["rgb"][0]
    with torch.enable_grad():
        _, fitted = refine_latent(prior, ws, picture, 16.0, 0.0, 6, encoder.w_std, fit_view=True)
        _, kept = refine_latent(prior, ws, picture, 16.0, 0.0, 2, encoder.w_std, fit_view=False)
    assert abs(fitted["yaw"] - 10.0) < 4.0, "the guessed view moves toward the picture's"
    assert fitted["input_view_psnr_db"] > fitted["input_view_psnr_db_encoded"]
    assert kept["yaw"] == 16.0 and kept["pitch"] == 0.0


def test_head_files_round_trip_and_refuse_what_is_not_one(tmp_path):
    ws = torch.randn(12, 256)
    path = write_head(tmp_path / "h.json", ws, {"source": "picture"}, "abc")
    back, description = read_head(path, 12, 256, "abc")
    assert torch.allclose(back, ws, atol=1e-5) and description == {"source": "picture"}
    with pytest.raises(BridgeError, match="another generator"):
        read_head(path, 12, 256, "other")
    with pytest.raises(BridgeError, match="14 rows of 256"):
        read_head(path, 14, 256, "abc")
    bad = tmp_path / "bad.json"
    for text in ("{", json.dumps({"format": "text-edit/head", "format_version": 1, "ws": [[float("nan")] * 256] * 12}), "[]"):
        bad.write_text(text)
        with pytest.raises(BridgeError):
            read_head(bad, 12, 256)
    np.testing.assert_allclose(back.numpy(), ws.numpy(), atol=1e-5)


def _head_document(**changes) -> str:
    document = {"format": "text-edit/head", "format_version": 1, "ws": [[0.5] * 256] * 12, "description": {"source": "picture"}}
    return json.dumps({**document, **changes})


@pytest.mark.parametrize(
    "text, says",
    [
        ("[" * 200_000 + "]" * 200_000, "not a head file"),
        (_head_document(ws=[[0.5] * 255 + [10**400]] + [[0.5] * 256] * 11), "numbers within"),
        (_head_document(ws=[[True] * 256] * 12), "numbers within"),
        (_head_document(format_version=True), "not a head file this bridge reads"),
        (_head_document(description={"note": "x" * 100_000}), "longer than"),
        (_head_document(description={"x": float("nan")}), "NaN"),
        (_head_document(description=[1, 2]), "not a JSON object"),
        (_head_document(description={"a": json.loads("[" * 40 + "]" * 40)}), "nests deeper"),
    ],
)
def test_hostile_head_files_get_one_sentence_before_any_work(tmp_path, text, says):
    """The description goes into every grid's provenance: what the grid writer would refuse after
    the edit ran is refused when the head is read."""
    path = tmp_path / "hostile.json"
    path.write_text(text)
    with pytest.raises(BridgeError, match=says) as error:
        read_head(path, 12, 256)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


def test_a_large_photo_is_worked_on_small_and_named_by_the_file_it_came_from():
    from bridge.images import PICTURE_SIDE, Picture, decode_picture

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((3 * 1100, 3 * 1000)))  # 3300 x 3000
    encoded = _png(photo)
    full = decode_picture(encoded, max_side=None)
    small = decode_picture(encoded)
    assert max(small.pixels.shape[-2:]) <= PICTURE_SIDE and small.pixels.shape[-2:] == (1500, 1650), (
        "halved: the smallest whole factor that fits"
    )
    assert small.size == full.size == (3300, 3000) and small.sha256 == full.sha256 == Picture.of(full.pixels).sha256
    assert torch.allclose(small.pixels, torch.nn.functional.avg_pool2d(full.pixels[None], 2)[0], atol=1 / 255)

    prior = HeadPrior.load()
    encoder = ImageEncoder.load(generator_sha256=prior.sha256)
    ws_small, described = head_from_picture(prior, encoder, small, (300, 0, 1140))
    ws_full, described_full = head_from_picture(prior, encoder, full, (300, 0, 1140))
    assert described == described_full, "crop, size and hash are the file's, whichever copy was worked on"
    assert described["crop"] == [300, 0, 1140] and described["picture_size"] == [3300, 3000]
    assert (ws_small - ws_full).norm() < 0.05 * ws_full.norm()
    with pytest.raises(BridgeError, match="inside the 3300 x 3000 picture"):
        head_from_picture(prior, encoder, small, (3000, 0, 1140))


def _png(pixels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_pictures_read_as_a_viewer_shows_them():
    """A phone photo's EXIF rotation is applied, transparency lies over white, and a 16-bit
    greyscale PNG keeps its greys (PIL's own conversion made it white)."""
    import io

    from bridge.images import decode_picture

    upright = data.astronaut()[:, :400]  # 512 high, 400 wide
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the viewer turns it 90 degrees clockwise
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_270).transpose(Image.Transpose.ROTATE_180).save(
        buffer, "PNG", exif=exif.tobytes()
    )
    turned = decode_picture(buffer.getvalue())
    assert turned.size == (400, 512)
    assert np.abs(turned.pixels.permute(1, 2, 0).numpy() * 255 - upright).mean() < 1.0

    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 20, 20, 255)  # a red square on a transparent background
    square = decode_picture(_png(rgba)).pixels
    assert torch.allclose(square[:, 0, 0], torch.ones(3)) and torch.allclose(square[:, 16, 16], torch.tensor([200, 20, 20]) / 255.0)

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    grey = decode_picture(buffer.getvalue()).pixels
    assert abs(float(grey.mean()) - 0.5) < 0.01 and float(grey[0, 0, 0]) == 0.0 and float(grey[0, -1, -1]) == 1.0
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 200, np.uint16)).save(buffer, "PNG")  # a dark 16-bit picture is not 8-bit
    assert abs(float(decode_picture(buffer.getvalue()).pixels.mean()) - 200 / 65535) < 1e-3
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "PNG", transparency=(0, 0, 0))  # tRNS: black is see-through
    assert torch.equal(decode_picture(buffer.getvalue()).pixels[:, 0, 0], torch.ones(3))
    assert decode_picture(_png(np.zeros((8, 128), np.uint8)), max_side=64).pixels.shape == (3, 8, 128), "never shrunk below 8 pixels"


def test_a_long_thin_strip_is_refused_before_it_is_decoded():
    """An 8 x 4,990,000 PNG is 116 kB and within the pixel limit, but could never shrink (its short
    side stays >= 8): 460 MB as floats. Refused from its header, in one sentence."""
    from bridge.images import decode_picture

    for strip in (png_header_only(4_990_000, 8), _png(np.zeros((8, 200), np.uint8))):
        with pytest.raises(BridgeError, match=r"too long and thin for a head; crop it to at most 16:1") as refused:
            decode_picture(strip)
        assert "\n" not in str(refused.value)
    assert decode_picture(_png(np.zeros((8, 128), np.uint8))).pixels.shape == (3, 8, 128)


def test_damaged_exif_is_metadata_not_a_reason_to_fail(tmp_path):
    """Bytes of a photo's EXIF block changed at random: each picture is read (as stored when its
    orientation cannot be read) or refused in one sentence; a struct.error escaped before, and
    PIL's warnings reached the terminal (checked in a process of its own: pytest records every
    warning whatever the filters say)."""
    import io

    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "Camera"
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()[::8, ::8]).save(buffer, "JPEG", exif=exif.tobytes())
    (tmp_path / "photo.jpg").write_bytes(buffer.getvalue())
    script = """
import random, sys
from bridge.errors import BridgeError
from bridge.images import decode_picture
photo, rng, read = open(sys.argv[1], "rb").read(), random.Random(0), 0
for _ in range(400):
    damaged = bytearray(photo)
    for _ in range(rng.randint(1, 8)):
        damaged[rng.randrange(2, 300)] = rng.randrange(256)  # the EXIF block is at the front
    try:
        decode_picture(bytes(damaged))
        read += 1
    except BridgeError as error:
        assert "\\n" not in str(error)
print(read)
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "photo.jpg")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and int(done.stdout) > 100, done.stderr[-2000:]
    assert done.stderr == "", done.stderr[:500]


def test_a_head_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows Notepad starts a UTF-8 file with a byte-order mark: "not a head file (JSONDecodeError)"."""
    prior = HeadPrior.load()
    code = HeadCode.from_seed(4)
    path = write_head(tmp_path / "head.json", prior.ws(code.params[None], code.noise[None])[0], {"source": "seed"}, prior.sha256)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ws, description = read_head(path, prior.generator.num_ws, prior.generator.config.w_dim, prior.sha256)
    assert ws.shape == (prior.generator.num_ws, prior.generator.config.w_dim) and description == {"source": "seed"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_for_a_picture_or_head_file_is_refused_not_waited_on(tmp_path):
    """`edit --head FIFO` and `head-from-image FIFO` blocked for ever in read()."""
    from bridge.images import load_picture

    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    with pytest.raises(BridgeError, match="not a regular file"):
        load_picture(pipe)
    with pytest.raises(BridgeError, match="is not a head file"):
        read_head(pipe, 4, 8)
