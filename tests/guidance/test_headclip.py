"""The bundled head CLIP: captions, its training loop, and the shipped weights."""

import random

import pytest
import torch

from bridge.guidance.captions import PHRASES, caption, mask_prompt_ensemble, nameable, zero_shot_prompts
from bridge.guidance.clip import BUNDLED, load_clip
from bridge.guidance.headclip import (
    HeadClipTrainingConfig,
    caption_targets,
    multi_positive_clip_loss,
    read_metadata,
    render_views,
    train_headclip,
)
from bridge.prior.params import describe, sample_params, with_overrides


def test_captions_state_only_true_facts():
    params = sample_params(64, torch.Generator().manual_seed(0))
    rng = random.Random(0)
    for head in params:
        c = caption(describe(head), rng)
        assert c.facts and c.holds_for(describe(head))
        for name, value in c.facts:
            assert any(phrase in c.text for phrase in PHRASES[name][value])


def test_sizes_are_named_only_at_their_extremes():
    attributes = {"nose": "medium", "eyes": "big", "mouth": "open"}
    assert nameable(attributes) == {"eyes": "big", "mouth": "open"}
    assert set(zero_shot_prompts("nose")) == {"small", "big"}
    assert "blue eyes" in mask_prompt_ensemble("eyes") and mask_prompt_ensemble("eyes")[0] == "eyes"


def test_captions_true_of_other_heads_are_positives():
    params = sample_params(32, torch.Generator().manual_seed(1))
    rng = random.Random(1)
    captions = [caption(describe(p), rng) for p in params]
    targets = caption_targets(captions, [describe(p) for p in params])
    assert torch.equal(targets.diagonal(), torch.ones(32))
    assert targets.sum() > 32  # e.g. two heads with brown eyes
    scale = torch.tensor(3.0)
    identity = torch.eye(32)
    # Features that also match the other true captions beat features that match only their own.
    loss_shared = multi_positive_clip_loss(targets, identity, scale, targets)
    loss_own_only = multi_positive_clip_loss(identity, identity, scale, targets)
    assert loss_shared < loss_own_only


def test_render_views_gives_images_and_part_maps():
    views = render_views(2, 2, 32, seed=5)
    assert views.images.shape == (4, 3, 32, 32) and views.images.dtype == torch.uint8
    assert views.parts.shape == (4, 32, 32) and int(views.parts.max()) > 1
    assert torch.equal(views.params[0], views.params[1])  # two views of one head
    assert views.yaw[0] != views.yaw[1]


def test_a_short_training_run_writes_a_loadable_open_clip_folder(tmp_path):
    config = HeadClipTrainingConfig(heads=8, steps=2, batch=4, eval_heads=4, eval_every=1000, warmup_steps=1)
    metadata = train_headclip(config, tmp_path / "clip", cache=tmp_path / "views.npz")
    assert metadata["training"]["steps_done"] == 2 and 0.0 <= metadata["metrics"]["attr_top1"] <= 1.0
    assert (tmp_path / "views.npz").is_file()
    clip = load_clip(f"local-dir:{tmp_path / 'clip'}")
    assert clip.encode_image(torch.rand(1, 3, 96, 96)).shape == (1, 128)
    # the normalisation used in training travels with the folder
    assert torch.allclose(clip.mean.flatten(), torch.full((3,), 0.5)) and torch.allclose(clip.std.flatten(), torch.full((3,), 0.25))
    assert read_metadata(tmp_path / "clip")["training"]["steps_done"] == 2


@pytest.fixture(scope="module")
def bundled():
    return load_clip(BUNDLED)


def test_bundled_clip_tells_hair_colours_apart(bundled):
    from bridge.field.renderer import render_orbit
    from bridge.guidance.headclip import DATA_RENDER
    from bridge.prior.views import analytic_field

    base = sample_params(1, torch.Generator().manual_seed(11))[0]
    heads = torch.stack([with_overrides(base, hair_colour=c, hair_length=0.8) for c in ("red", "black", "blonde")])
    images = render_orbit(analytic_field(heads), DATA_RENDER, 15.0, 0.0, 96, batch=3)["rgb"]
    text = bundled.encode_text(["a head with red hair", "a head with black hair", "a head with blonde hair"])
    similarity = bundled.encode_image(images) @ text.T
    assert torch.equal(similarity.argmax(dim=1), torch.arange(3))


def test_bundled_clip_hair_relevance_lies_on_the_hair(bundled):
    from bridge.guidance.relevance import PSEUDO_LABEL_OPTIONS, relevance_maps
    from bridge.prior.analytic import PART_IDS

    views = render_views(4, 1, 96, seed=77)
    foreground = (views.parts > 0).float()
    maps = relevance_maps(bundled, views.float_images(), mask_prompt_ensemble("hair"), foreground=foreground, **PSEUDO_LABEL_OPTIONS)
    hair = views.parts.long() == PART_IDS["hair"]
    inside = (maps * hair).flatten(1).sum(1) / hair.flatten(1).sum(1)
    outside = (maps * ~hair).flatten(1).sum(1) / (~hair).flatten(1).sum(1)
    assert bool((inside > outside).all()), (inside, outside)
