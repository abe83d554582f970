"""The open model's mask pseudo-labels: CLIP relevance by contrast, and no label where CLIP cannot see the part."""

import pytest
import torch

from bridge.guidance.clip import load_clip
from bridge.guidance.headclip import render_views
from bridge.lenerf.open_model import OpenEditModel
from bridge.lenerf.open_trainer import MASK_VOCABULARY, OpenData, OpenTrainer, OpenTrainingConfig, view_labels
from bridge.prior.analytic import PART_IDS
from bridge.prior.model import HeadPrior
from bridge.prior.params import describe


@pytest.fixture(scope="module")
def views():
    return render_views(12, 1, 48, seed=2024)


def test_eye_labels_sit_on_the_eyes_and_closed_mouths_are_left_unlabelled(views):
    clip = load_clip("bundled")
    opacity = (views.parts > 0).float().flatten(1)
    labels, known = view_labels(clip, views.images, opacity)
    assert labels.shape == (len(views), len(MASK_VOCABULARY), 48 * 48) and labels.dtype == torch.uint8
    parts = views.parts.flatten(1).long()
    eyes = labels[:, MASK_VOCABULARY.index("eyes")] > 127
    on_eyes = (eyes & (parts == PART_IDS["eyes"])).sum()
    on_skin = (eyes & (parts == PART_IDS["skin"])).sum()
    assert on_eyes > on_skin  # the skin around the eyes has 10x their pixels
    assert known[:, MASK_VOCABULARY.index("eyes")].all() and known[:, MASK_VOCABULARY.index("hair")].all()
    mouth = MASK_VOCABULARY.index("mouth")
    opened = torch.tensor([describe(p)["mouth"] == "open" for p in views.params])
    assert opened.any() and (~opened).any()
    assert (known[:, mouth] == opened).float().mean() >= 0.75  # the head CLIP's open/closed call
    assert (labels[~known[:, mouth], mouth] == 0).all()


def test_views_that_do_not_label_a_prompt_add_nothing_to_its_loss():
    prior = HeadPrior.load()
    clip = load_clip("bundled")
    generator = torch.Generator().manual_seed(0)
    heads, views, rays, samples = 12, 4, 64, 3
    known = torch.ones(views, len(MASK_VOCABULARY), dtype=torch.bool)
    known[1:3, MASK_VOCABULARY.index("mouth")] = False
    data = OpenData(
        ws=torch.randn(heads, prior.generator.num_ws, prior.generator.config.w_dim, generator=generator),
        embeddings=torch.nn.functional.normalize(torch.randn(heads, 128, generator=generator), dim=-1),
        points=torch.rand(views, rays, samples, 3, generator=generator) - 0.5,
        features=torch.randn(views, rays, samples, prior.generator.config.plane_channels, generator=generator).half(),
        opacity=torch.ones(views, rays),
        labels=torch.randint(0, 256, (views, len(MASK_VOCABULARY), rays), generator=generator, dtype=torch.uint8),
        known=known,
    )
    config = OpenTrainingConfig(heads=heads, pair_batch=8, mask_batch=512)

    def mask_loss(data) -> float:
        torch.manual_seed(0)
        model = OpenEditModel.for_generator(prior.generator, 128, retrieval_heads=heads - 3)
        return float(OpenTrainer(model, data, clip, config).batch_losses(torch.Generator().manual_seed(5))["mask_bce"].item())

    before = mask_loss(data)
    changed = data.labels.clone()
    changed[1:3, MASK_VOCABULARY.index("mouth")] = 255 - changed[1:3, MASK_VOCABULARY.index("mouth")]
    assert mask_loss(OpenData(**{**vars(data), "labels": changed})) == pytest.approx(before, rel=1e-6)
    changed[0, MASK_VOCABULARY.index("mouth")] = 255 - changed[0, MASK_VOCABULARY.index("mouth")]
    assert mask_loss(OpenData(**{**vars(data), "labels": changed})) != pytest.approx(before, rel=1e-6)
