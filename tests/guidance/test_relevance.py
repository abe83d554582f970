"""Relevance maps: shape, range, and a planted case whose answer is known exactly."""

import pytest
import torch

from bridge.errors import BridgeError
from bridge.guidance.relevance import captured_attention, pseudo_label, refine_with_image, relevance_maps


def test_maps_have_the_image_size_and_unit_range(tiny_clip):
    images = torch.rand(3, 3, 40, 40)
    maps = relevance_maps(tiny_clip, images, ["eyes", "the eyes"], negative_prompts="face")
    assert maps.shape == (3, 40, 40)
    assert float(maps.min()) == pytest.approx(0.0, abs=1e-6) and float(maps.max()) == pytest.approx(1.0, abs=1e-6)
    assert relevance_maps(tiny_clip, images, "eyes", last_blocks=1, size=(8, 8)).shape == (3, 8, 8)


def test_attention_capture_matches_open_clip_and_is_removed_afterwards(tiny_clip):
    images = torch.rand(2, 3, 32, 32)
    expected = tiny_clip.encode_image(images)
    with captured_attention(tiny_clip) as attention:
        captured = tiny_clip.encode_image(images)
    assert torch.allclose(captured, expected, atol=1e-5)
    assert len(attention) == 2 and attention[0].shape == (2, 2, 17, 17)  # blocks, (B, heads, 1 + 4x4, same)
    assert torch.allclose(attention[0].sum(-1), torch.ones(2, 2, 17), atol=1e-5)
    assert all("attention" not in vars(b) for b in tiny_clip.model.visual.transformer.resblocks)


def _planted_model(clip):
    """One block, uniform attention, no positional embedding, no biases, no MLP: every patch token
    of a black image is exactly zero, so the bright patch is the only one that can carry relevance
    (its cam is +-(v . dy/dout) / L, positive for one sign of the text direction)."""
    visual = clip.model.visual
    with torch.no_grad():
        visual.positional_embedding.zero_()
        for block in visual.transformer.resblocks:
            width = block.attn.embed_dim
            block.attn.in_proj_weight[: 2 * width].zero_()
            block.attn.in_proj_bias.zero_()
            block.attn.out_proj.bias.zero_()
            block.mlp.c_fc.bias.zero_()
            block.mlp.c_proj.bias.zero_()
            block.mlp.c_proj.weight.zero_()
    visual.transformer.resblocks = visual.transformer.resblocks[:1]
    return clip


def test_planted_patch_is_the_only_relevant_place(tiny_clip, monkeypatch):
    clip = _planted_model(tiny_clip)
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, 16:24, 8:16] = 1.0  # patch (row 2, column 1) of the 4x4 grid
    clip.mean, clip.std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)  # black stays exactly zero
    direction = torch.nn.functional.normalize(torch.randn(32, generator=torch.Generator().manual_seed(0)), dim=0)
    found = []
    for sign in (1.0, -1.0):
        monkeypatch.setattr(clip, "encode_text", lambda prompts, d=sign * direction: d[None])
        found.append(
            (
                relevance_maps(clip, image, "planted")[0],
                relevance_maps(clip, image, "planted", shifts=2)[0],
                relevance_maps(clip, image, "planted", token_scale=2)[0],
            )
        )
    plain, shifted, finer = max(found, key=lambda maps: float(maps[0][20, 12]))
    assert float(plain[20, 12]) == pytest.approx(1.0, abs=0.05)  # centre of the planted cell
    assert float(plain[:8].abs().max()) < 1e-6 and float(plain[:, 24:].abs().max()) < 1e-6  # cells not touching it
    row, column = divmod(int(shifted.argmax()), 32)
    assert 16 <= row < 24 and 8 <= column < 16
    # A 2x finer token grid (the image is up-sampled 2x, so the patch spreads by a pixel into its
    # neighbours, 4 pixels here): the peak is on the patch or a neighbouring token, and tokens not
    # touching it stay empty.
    row, column = divmod(int(finer.argmax()), 32)
    assert 12 <= row < 28 and 4 <= column < 20
    assert float(finer[:10].abs().max()) < 1e-6 and float(finer[:, 22:].abs().max()) < 1e-6


def test_a_finer_token_grid_leaves_the_model_as_it_was(tiny_clip):
    visual = tiny_clip.model.visual
    embedding, grid = visual.positional_embedding.detach().clone(), visual.grid_size
    images = torch.rand(2, 3, 32, 32)
    expected = tiny_clip.encode_image(images)
    maps = relevance_maps(tiny_clip, images, "eyes", token_scale=2)
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
    assert visual.grid_size == grid and torch.equal(visual.positional_embedding, embedding)
    assert torch.allclose(tiny_clip.encode_image(images), expected)


def _two_colour_image(size: int = 32) -> torch.Tensor:
    """Left half red, right half blue."""
    image = torch.zeros(1, 3, size, size)
    image[:, 0, :, : size // 2] = 1.0
    image[:, 2, :, size // 2 :] = 1.0
    return image


def test_refinement_fills_the_region_of_one_colour_and_stops_at_its_edge():
    image = _two_colour_image()
    spot = torch.zeros(1, 32, 32)
    spot[:, 14:18, 10:14] = 1.0  # in the red half, 2 pixels from the edge
    refined = refine_with_image(spot, image, iterations=12)
    red, blue = refined[0, :, :16], refined[0, :, 16:]
    assert float(blue.abs().max()) < 1e-6  # nothing crosses the colour edge
    assert float(red[10:22, 8:].min()) > 0.25 * float(red.max())  # the red region fills around the spot
    assert float(refined.sum()) == pytest.approx(float(spot.sum()), rel=0.35)  # spread, not created


def test_refinement_leaves_a_uniform_map_and_zero_rounds_alone(tiny_clip):
    image = torch.rand(2, 3, 24, 24)
    uniform = torch.full((2, 24, 24), 0.3)
    assert torch.allclose(refine_with_image(uniform, image, iterations=5), uniform, atol=1e-6)
    raw = relevance_maps(tiny_clip, image, "eyes")
    assert torch.equal(relevance_maps(tiny_clip, image, "eyes", refine=0), raw)
    refined = relevance_maps(tiny_clip, image, "eyes", refine=4)
    assert refined.shape == raw.shape and float(refined.min()) == 0.0 and float(refined.max()) == pytest.approx(1.0)
    assert not torch.allclose(refined, raw)


def test_pseudo_label_is_half_at_the_level_and_saturates_around_it():
    maps = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 1.0])
    label = pseudo_label(maps, level=0.2)
    assert label.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0, 1.0])


def test_a_model_without_vit_blocks_is_refused(tiny_clip):
    tiny_clip.model.visual.transformer.resblocks = torch.nn.ModuleList()
    with pytest.raises(BridgeError, match="need an open_clip ViT"):
        relevance_maps(tiny_clip, torch.rand(1, 3, 32, 32), "eyes")


@pytest.mark.parametrize("architecture, grid", [("ViT-B-32", (7, 7)), ("ViT-B-16", (14, 14))])
def test_released_vit_layouts_work(architecture, grid):
    """The real architectures (random weights: only the layout matters here)."""
    from bridge.guidance.clip import ClipModel, import_open_clip

    open_clip = import_open_clip()
    clip = ClipModel(open_clip.create_model(architecture), open_clip.get_tokenizer(architecture), architecture)
    assert tuple(clip.model.visual.grid_size) == grid
    maps = relevance_maps(clip, torch.rand(1, 3, 224, 224), ["eyes", "blue eyes"], last_blocks=1)
    assert maps.shape == (1, 224, 224) and float(maps.max()) == pytest.approx(1.0, abs=1e-6)


def test_best_threshold_iou_per_map_and_for_the_whole_set():
    from bridge.guidance.metrics import best_threshold_iou

    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    maps = torch.zeros(2, 10, 10)
    maps[0][masks[0]] = 0.9  # exact at any level below 0.9
    maps[1][masks[1]] = 0.3  # exact only below 0.3
    maps[1, 8, 8] = 0.2  # a stray pixel, excluded above 0.2
    result = best_threshold_iou(maps, masks)
    assert result["iou"] == pytest.approx(1.0)
    assert result["iou_one_level"] == pytest.approx(1.0) and 0.2 < result["level"] <= 0.3


def test_foreground_limits_the_map_and_best_prompt_choice_runs(tiny_clip):
    images = torch.rand(2, 3, 32, 32)
    foreground = torch.zeros(2, 32, 32)
    foreground[:, :, :16] = 1.0
    maps = relevance_maps(tiny_clip, images, ["blue eyes", "brown eyes"], foreground=foreground, prompt_choice="best")
    assert float(maps[:, :, 17:].max()) == pytest.approx(0.0, abs=1e-6)
    assert float(maps[:, :, :15].max()) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="Unknown prompt choice"):
        relevance_maps(tiny_clip, images, ["a", "b"], prompt_choice="first")


def test_best_prompt_choice_follows_the_image(tiny_clip, monkeypatch):
    """With two prompts, "best" gives each image the map of the prompt closest to it."""
    images = torch.rand(2, 3, 32, 32)
    normalize = torch.nn.functional.normalize
    with torch.no_grad():
        embeddings = normalize(tiny_clip.model.encode_image(tiny_clip.prepare(images)), dim=-1)
    # one text near each image (not at it: at the maximum of y its gradient would vanish)
    texts = normalize(embeddings + 0.3 * normalize(torch.randn(2, 32, generator=torch.Generator().manual_seed(0)), dim=-1), dim=-1)
    assert torch.equal((embeddings @ texts.T).argmax(dim=1), torch.arange(2))
    monkeypatch.setattr(tiny_clip, "encode_text", lambda prompts: texts if len(prompts) == 2 else texts[[1]])
    best = relevance_maps(tiny_clip, images, ["first", "second"], prompt_choice="best")
    only_second = relevance_maps(tiny_clip, images, ["second"])
    assert float(best[1].max()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(best[1], only_second[1], atol=1e-5)
    assert not torch.allclose(best[0], only_second[0], atol=1e-3)


def _reference_all_block_map(clip, image, direction):
    """Chefer et al.'s reference, written out in full: y = logit_scale * cos(E_I, t), the whole
    relevance matrix R = prod (I + mean_h clamp(dy/dA * A, 0)) built block by block, the CLS row."""
    prepared = clip.prepare(image)
    with torch.enable_grad(), captured_attention(clip) as attention:
        embedding = torch.nn.functional.normalize(clip.model.encode_image(prepared.requires_grad_(True)), dim=-1)
        y = clip.model.logit_scale.exp() * (embedding @ direction)
        gradients = torch.autograd.grad(y.sum(), attention)
    tokens = attention[0].shape[-1]
    relevance = torch.eye(tokens)[None]
    for attn, grad in zip(attention, gradients):
        cam = (grad * attn).clamp(min=0).mean(dim=1)
        relevance = relevance + cam @ relevance
    row = relevance[:, 0, 1:]
    return row.reshape(1, 1, 4, 4)


@pytest.mark.parametrize("temperature", [1.0, 100.0])
def test_all_block_maps_use_the_models_logit_scale_like_the_reference(tiny_clip, monkeypatch, temperature):
    """With y = cos the all-block maps drift from the reference's once the logit scale is far from 1;
    with the model's own scale they are the reference's, at every scale."""
    from bridge.guidance.relevance import _chefer_maps

    with torch.no_grad():
        tiny_clip.model.logit_scale.fill_(float(torch.log(torch.tensor(temperature))))
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    direction = torch.nn.functional.normalize(torch.randn(32, generator=torch.Generator().manual_seed(2)), dim=0)
    ours = _chefer_maps(tiny_clip, tiny_clip.prepare(image), direction[None], None, 2, 1, (32, 32))
    reference = torch.nn.functional.interpolate(
        _reference_all_block_map(tiny_clip, image, direction).detach(), size=(32, 32), mode="bilinear", align_corners=False
    )
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-6 * float(reference.abs().max()))
