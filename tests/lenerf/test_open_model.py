"""The bundled open-vocabulary edit model: any prompt edits a prior head, with no module trained for it."""

import json

import pytest
import torch

from bridge.errors import BridgeError
from bridge.guidance.clip import load_clip
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import EditLibrary
from bridge.lenerf.open_model import BUNDLED_OPEN_MODEL, METADATA, TENSORS, OpenEditModel, OpenModelError, clip_gain
from bridge.prior.model import HeadCode, HeadPrior


@pytest.fixture(scope="module")
def setting():
    prior = HeadPrior.load()
    clip = load_clip("bundled")
    model = OpenEditModel.load(generator_sha256=prior.sha256)
    model.check_clip(clip)
    code = HeadCode.from_seed(3)
    with torch.no_grad():
        ws = prior.ws(code.params[None], code.noise[None])
    return prior, clip, model, ws


def _target(model, clip, ws, edit, mask="eyes"):
    with torch.no_grad():
        return model.edit(clip, edit, mask).modules.mapper.target(ws)


def test_the_edit_follows_the_prompt_and_not_its_wording(setting):
    prior, clip, model, ws = setting
    green = _target(model, clip, ws, "green eyes")
    assert not torch.allclose(green, _target(model, clip, ws, "red hair", "hair"), atol=1e-3)
    assert not torch.allclose(green, ws, atol=1e-3)
    assert torch.equal(green, _target(model, clip, ws, "  green   eyes "))
    points = torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        masks = [
            apply_edits(prior.generator, ws, [EditStep(model.edit(clip, "green eyes", m))])[0](points)["mask"]
            for m in ("eyes", "the eyes", "hair")
        ]
    assert torch.equal(masks[0], masks[1])  # an article does not change where
    assert not torch.allclose(masks[0], masks[2], atol=1e-3)


def test_empty_and_huge_prompts_get_one_sentence(setting):
    _, clip, model, _ = setting
    for edit, mask in (("", "eyes"), ("green eyes", "   "), ("x" * 10_000, "eyes"), ("green eyes", "y" * 10_000)):
        with pytest.raises(BridgeError) as error:
            model.edit(clip, edit, mask)
        assert "\n" not in str(error.value) and len(str(error.value)) < 200


def test_prompt_edits_stack_with_modules_and_keep_the_shape_when_texture_only(setting):
    prior, clip, model, ws = setting
    library = EditLibrary(generator_sha256=prior.sha256)
    points = torch.rand(1, 8192, 3) - 0.5
    with torch.no_grad():
        field, _ = apply_edits(prior.generator, ws, [EditStep(library.load("red_hair")), EditStep(model.edit(clip, "green eyes", "eyes"))])
        out = field(points)
        assert out["masks"].shape == (1, 8192, 2) and torch.isfinite(out["rgb"]).all()
        texture = model.edit(clip, "a big nose", "nose", geometry=False)
        kept = apply_edits(prior.generator, ws, [EditStep(texture)])[0](points)["sigma"]
        source = prior.generator.field(ws)(points)["sigma"]
    assert torch.equal(kept, source)


def test_strength_zero_is_the_source_and_clip_sees_the_edit(setting):
    prior, clip, model, ws = setting
    edit = model.edit(clip, "red hair", "hair")
    with torch.no_grad():
        assert torch.equal(edit.modules.mapper.target(ws, 0.0), ws)
        field, edited_ws = apply_edits(prior.generator, ws, [EditStep(edit)])
        before = prior.view(prior.generator.field(ws), ws, 20.0, 64)["rgb"][0]
        after = prior.view(field, edited_ws, 20.0, 64)["rgb"][0]
    assert clip_gain(clip, before, after, "red hair") > 0


def test_files_of_another_generator_or_damaged_are_refused(setting, tmp_path):
    prior, *_ = setting
    folder = tmp_path / "model"
    folder.mkdir()
    for name in (TENSORS, METADATA):
        (folder / name).write_bytes((BUNDLED_OPEN_MODEL / name).read_bytes())
    with pytest.raises(OpenModelError, match="another generator"):
        OpenEditModel.load(folder, "0" * 64)
    data = bytearray((folder / TENSORS).read_bytes())
    data[-5] ^= 0xFF
    (folder / TENSORS).write_bytes(bytes(data))
    with pytest.raises(OpenModelError, match="checksum"):
        OpenEditModel.load(folder, prior.sha256)
    (folder / METADATA).write_text("{not json")
    with pytest.raises(OpenModelError, match="not valid JSON"):
        OpenEditModel.load(folder)
    with pytest.raises(OpenModelError, match="train one"):
        OpenEditModel.load(tmp_path / "nothing")


def test_the_bundled_model_is_small_and_says_how_it_was_trained():
    size_mb = (BUNDLED_OPEN_MODEL / TENSORS).stat().st_size / 2**20
    assert size_mb <= 30
    training = json.loads((BUNDLED_OPEN_MODEL / METADATA).read_text())["training"]
    assert "train-open-edit" in training["command"] and training["figures"]["edit_scale"] > 0


def _bridge(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=300)


def test_the_command_line_edits_by_prompt_instruction_and_picture(tmp_path):
    import mesh_export
    from bridge.images import save_png

    out = tmp_path / "field.npz"
    done = _bridge("edit", "--seed", "3", "--edit", "green eyes", "--mask", "eyes", "--grid", "64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "green eyes" in done.stdout and mesh_export.read(out).provenance["edits"][0]["model"] == "open model"
    done = _bridge("edit", "--seed", "3", "--module", "red_hair", "--instruction", "make the eyes green", "--grid", "64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "-> edit 'green eyes' on 'eyes'" in done.stdout and mesh_export.read(out).edit_steps == 2
    picture = tmp_path / "ref.png"
    save_png(torch.rand(3, 40, 40), picture)
    done = _bridge("edit", "--seed", "3", "--image-prompt", str(picture), "--mask", "hair", "--grid", "64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    from PIL import Image

    empty, text, huge = tmp_path / "empty.png", tmp_path / "text.png", tmp_path / "huge.png"
    empty.write_bytes(b"")
    text.write_text("not a picture")
    Image.new("1", (20_000, 20_000)).save(huge)
    for args, said in (
        (("--instruction", "make it nicer"), "names no part"),
        (("--edit", "green eyes"), "needs --mask"),
        (("--image-prompt", str(empty), "--mask", "hair"), "Cannot read the image"),
        (("--image-prompt", str(text), "--mask", "hair"), "Cannot read the image"),
        (("--image-prompt", str(huge), "--mask", "hair"), "pixels"),
        ((), "Say what to edit"),
        (("--edit", "x" * 10_000, "--mask", "eyes"), "10000 characters"),
    ):
        done = _bridge("edit", "--seed", "3", "--grid", "64", "--out", str(out), *args)
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_a_module_started_from_the_open_model_takes_its_edit(setting):
    """train-edit --from-open-model: LENeRF's modules regress the open model's edit before training."""
    from bridge.lenerf.modules import EditModules, ModuleConfig
    from bridge.lenerf.open_trainer import distil_prompt_edit

    prior, clip, model, ws = setting
    prompt = model.edit(clip, "red hair", "hair", geometry=False)
    torch.manual_seed(0)
    modules = EditModules(ModuleConfig.for_generator(prior.generator))
    with torch.no_grad():
        wanted = prompt.modules.mapper.target(ws)
        before = (modules.mapper.target(ws) - wanted).square().mean()
    first = distil_prompt_edit(modules, prompt, prior.generator, prior.sample_ws, steps=1, heads=2, points=1024)
    last = distil_prompt_edit(modules, prompt, prior.generator, prior.sample_ws, steps=40, heads=2, points=1024, seed=1)
    with torch.no_grad():
        after = (modules.mapper.target(ws) - wanted).square().mean()
    assert after < 0.75 * before and last["mask_bce"] < first["mask_bce"], (before, after, first, last)


def test_a_mask_prompt_synonym_reads_as_its_part(setting):
    prior, clip, model, ws = setting
    points = torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        masks = {
            m: apply_edits(prior.generator, ws, [EditStep(model.edit(clip, "blue hair", m))])[0](points)["mask"]
            for m in ("hair", "hairstyle", "the fringe", "eyes")
        }
    assert torch.equal(masks["hair"], masks["hairstyle"]) and torch.equal(masks["hair"], masks["the fringe"])
    assert not torch.allclose(masks["hair"], masks["eyes"], atol=1e-3)


def test_an_edit_mask_keeps_the_fields_part_and_drops_its_unsure_tails(setting):
    """Blend weights below the field's own where it is unsure: less of the edit leaks onto the head."""
    prior, clip, model, ws = setting
    attention = model.edit(clip, "red hair", "hair", geometry=False).modules.attention
    torch.manual_seed(0)
    points = torch.rand(1, 4096, 3) - 0.5
    features = torch.randn(1, 4096, prior.generator.config.plane_channels)
    query = attention.query[:, None].expand(-1, 4096, -1)
    with torch.no_grad():
        blended = attention(features, points, features, points, query)
        raw = attention.field(features, points, query)
    assert torch.equal(blended > 0.5, raw > 0.5), "the part itself is the field's"
    unsure = (raw > 0.02) & (raw < 0.45)
    assert unsure.any() and bool((blended[unsure] < raw[unsure]).all())


def test_a_prompt_of_colours_keeps_the_shape_unless_told_otherwise(setting):
    prior, clip, model, ws = setting
    assert model.edit(clip, "red hair", "hair").spec.geometry is False
    assert model.edit(clip, "long hair", "hair").spec.geometry is True
    assert model.edit(clip, "red hair", "hair", geometry=True).spec.geometry is True
    assert model.edit(clip, "long hair", "hair", geometry=False).spec.geometry is False
    points = torch.rand(1, 4096, 3) - 0.5
    with torch.no_grad():
        source = prior.generator.field(ws)(points)["sigma"]
        kept = apply_edits(prior.generator, ws, [EditStep(model.edit(clip, "red hair", "hair"))])[0](points)["sigma"]
    assert torch.allclose(source, kept, atol=1e-4), "a colour edit leaves the density as it was"


def test_an_untaught_colour_word_edits_as_its_caption_word_and_says_so(setting):
    """The bundled CLIP never saw "crimson": read as typed, its direction was nearer "blue eyes"
    than "red hair". A CLIP not trained on the captions reads it as typed."""
    _, clip, model, ws = setting
    crimson = model.edit(clip, "crimson hair", "hair")
    assert crimson.spec.edit == "red hair" and "'crimson' as 'red'" in crimson.note
    with torch.no_grad():
        assert torch.equal(crimson.modules.mapper.target(ws), model.edit(clip, "red hair", "hair").modules.mapper.target(ws))
    assert model.edit(clip, "red hair", "hair").note is None
    import copy

    open_clip_model = copy.copy(clip)  # the same weights, as a CLIP not trained on the captions
    open_clip_model.taught_by_captions = False
    assert model.edit(open_clip_model, "crimson hair", "hair").spec.edit == "crimson hair"
