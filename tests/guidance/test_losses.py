"""The LENeRF CLIP losses and their augmentations, on the tiny open_clip ViT."""

import pytest
import torch

from bridge.guidance.augment import augment, homography, warp
from bridge.guidance.losses import ClipEditLoss, ClipLossConfig

UNIT = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])


def test_homography_maps_the_four_corners():
    target = torch.tensor([[[-0.8, -0.9], [0.7, -1.0], [0.9, 0.8], [-1.0, 0.6]]])
    h = homography(UNIT, target)
    mapped = torch.cat([UNIT, torch.ones(1, 4, 1)], dim=-1) @ h.transpose(1, 2)
    assert torch.allclose(mapped[..., :2] / mapped[..., 2:], target, atol=1e-5)


def test_warp_with_the_full_frame_is_the_identity_and_augment_keeps_gradients():
    image = torch.rand(2, 3, 24, 24, requires_grad=True)
    assert torch.allclose(warp(image, UNIT.expand(2, 4, 2), (24, 24)), image, atol=1e-5)
    views = augment(image, copies=3, size=(16, 16), generator=torch.Generator().manual_seed(0))
    assert views.shape == (3, 2, 3, 16, 16)
    views.sum().backward()
    assert image.grad.abs().sum() > 0


def _optimise(loss_fn, source, steps=40):
    edited = source.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([edited], lr=0.03)
    generator = torch.Generator().manual_seed(0)
    first = None
    for _ in range(steps):
        loss = loss_fn(edited.clamp(0, 1), source, generator)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    generator = torch.Generator().manual_seed(1)
    final = loss_fn(edited.detach().clamp(0, 1), source, generator).item()
    initial = loss_fn(source, source, torch.Generator().manual_seed(1)).item()
    return initial, final


@pytest.mark.parametrize("kind", ["contrastive", "directional", "global"])
def test_loss_falls_when_an_image_is_optimised_toward_the_prompt(tiny_clip, kind):
    torch.manual_seed(0)
    source = torch.rand(2, 3, 32, 32)
    loss = ClipEditLoss(tiny_clip, "a head with blue eyes", ClipLossConfig(kind=kind, augment_copies=2))
    initial, final = _optimise(loss, source)
    assert final < initial - 0.05, (initial, final)


def test_image_prompt_pulls_toward_the_reference_picture(tiny_clip):
    torch.manual_seed(1)
    source = torch.rand(1, 3, 32, 32)
    reference = torch.zeros(3, 32, 32)
    reference[2] = 1.0  # a blue picture
    loss = ClipEditLoss(tiny_clip, reference, ClipLossConfig(augment_copies=1))
    initial, final = _optimise(loss, source)
    assert final < initial - 0.05
    before = torch.cosine_similarity(tiny_clip.encode_image(source), tiny_clip.encode_image(reference[None]))
    assert before.shape == (1,)


def test_unknown_loss_kind_is_refused(tiny_clip):
    with pytest.raises(ValueError, match="Unknown CLIP loss"):
        ClipEditLoss(tiny_clip, "x", ClipLossConfig(kind="cosine"))


def test_contrastive_loss_rewards_a_clearer_edit_unless_directions_are_normalised(tiny_clip):
    """The same change made twice as large scores better by default; with normalised directions a
    faint tint in the right direction scores as well as the full edit (why it is off by default)."""
    torch.manual_seed(2)
    source = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    probe = ClipEditLoss(tiny_clip, "a head with blue eyes", ClipLossConfig(augment_copies=0))
    edited = source.clone().requires_grad_(True)
    probe(edited, source).backward()
    direction = -edited.grad.sign()  # a change the loss likes
    faint, clear = source + 0.01 * direction, source + 0.1 * direction
    by_length = ClipEditLoss(tiny_clip, "a head with blue eyes", ClipLossConfig(augment_copies=0))
    assert by_length(clear, source) < by_length(faint, source) - 1e-3
    by_angle = ClipEditLoss(tiny_clip, "a head with blue eyes", ClipLossConfig(augment_copies=0, normalize_direction=True))
    assert abs(by_angle(clear, source) - by_angle(faint, source)) < 0.5 * abs(by_length(clear, source) - by_length(faint, source))
