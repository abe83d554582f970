"""2D relevance maps of a mask prompt for open_clip ViTs, after Chefer et al. (2021).

For y = s cos(E_T(t_mask), E_I(I)), s the model's logit scale, the attention probabilities A_b of every vision block and their
gradients dy/dA_b are captured; per block cam_b = mean over heads of clamp(dy/dA_b * A_b, min 0),
and the relevance R starts at the identity and accumulates R <- R + cam_b @ R over the chosen
blocks. The row of the pooled token (CLS) over the patch tokens is the map (computed as that row
alone, see `_pooled_relevance_row`); it is upsampled to the
image size and min-max normalised per image. LENeRF's code uses only the last block
(`last_blocks=1`); all blocks is Chefer's original.

open_clip computes attention with `need_weights=False`, so the probabilities are not available
from it: while a map is computed, each block's attention is evaluated here with the block's own
weights, which keeps the probabilities in the autograd graph.

Prompt ensembles average the unit text embeddings; negative prompts subtract their cosine, so the
map shows what makes the image more "eyes" than "face".

`token_scale` s > 1 shows the ViT the image s times larger, with its positional embeddings
interpolated bicubically to the s x finer token grid, so a part smaller than a patch (eyes on a
96^2 head) spans several tokens.

`refine` n > 0 sharpens the map with the image itself (`refine_with_image`): n rounds of joint
bilateral filtering guided by the image's colours, so relevance spreads over the pixels of the
part's colour near where the ViT put it and stops at colour edges. A ViT's map is made of its
tokens and cannot follow an outline finer than a patch; the picture can.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.errors import BridgeError
from bridge.guidance.clip import ClipModel

PSEUDO_LABEL_OPTIONS = {"last_blocks": None, "shifts": 1, "prompt_choice": "best", "token_scale": 2, "refine": 12}
"""How the edit engine computes pseudo-labels (chosen on the head CLIP's validation heads, see
docs/guidance.md)."""
PSEUDO_LABEL_LEVEL = 0.15
"""The relevance (maps are min-max normalised) at which a pixel counts as the part: a single level
for all parts, near the best one-level IoU of eyes (0.2), hair (0.05-0.1) and mouth (0.2-0.3) on
the prior's own 64^2 renders. `pseudo_label` turns a map into a label that is 0.5 there."""
REFINE_SPATIAL_SIGMA = 1 / 16
"""Spatial reach of one refinement round, as a fraction of the map's width (6 pixels at 96^2)."""
REFINE_COLOUR_SIGMA = 0.025
"""Colour distance (RGB in [0, 1]) over which relevance stops spreading: a colour edge."""
REFINE_MAX_SIZE = 96
"""Larger maps are refined at this width and up-sampled (the bundled CLIP sees 96^2 pictures)."""


def _blocks(clip: ClipModel) -> list[torch.nn.Module]:
    visual = clip.model.visual
    transformer = getattr(visual, "transformer", None)
    blocks = list(getattr(transformer, "resblocks", []))
    if not blocks or not all(isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention) for b in blocks):
        raise BridgeError(
            f"Relevance maps need an open_clip ViT with standard attention blocks; {clip.source} is not one "
            "(use a ViT such as ViT-B-32 or ViT-B-16, or the bundled head CLIP)."
        )
    return blocks


def _capturing_attention(block: torch.nn.Module, store: list[Tensor]):
    mha: torch.nn.MultiheadAttention = block.attn

    def attention(q_x: Tensor, k_x: Tensor | None = None, v_x: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        x = q_x if mha.batch_first else q_x.transpose(0, 1)
        batch, length, width = x.shape
        heads = mha.num_heads
        q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        logits = (q @ k.transpose(-2, -1)) * (width // heads) ** -0.5
        if attn_mask is not None:
            logits = logits + attn_mask.to(logits.dtype)
        probabilities = logits.softmax(dim=-1)
        store.append(probabilities)
        out = (probabilities @ v).transpose(1, 2).reshape(batch, length, width)
        out = mha.out_proj(out)
        return out if mha.batch_first else out.transpose(0, 1)

    return attention


@contextmanager
def captured_attention(clip: ClipModel):
    """Within the block, every vision forward pass appends each block's attention probabilities
    (B, heads, L, L) to the yielded list, in block order."""
    blocks = _blocks(clip)
    store: list[Tensor] = []
    for block in blocks:
        block.attention = _capturing_attention(block, store)
    try:
        yield store
    finally:
        for block in blocks:
            del block.attention


_FINER_TOKENS = threading.Lock()


@contextmanager
def finer_tokens(clip: ClipModel, scale: int):
    """Within the block the vision tower takes inputs `scale` times the model's size: its token
    grid is `scale` times finer and its positional embeddings are interpolated to it."""
    if scale == 1:
        yield clip.image_size
        return
    visual = clip.model.visual
    with _FINER_TOKENS:
        original = visual.positional_embedding, visual.grid_size
        grid_h, grid_w = visual.grid_size
        cls, grid = original[0][:1], original[0][1:].reshape(1, grid_h, grid_w, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h * scale, grid_w * scale), mode="bicubic", align_corners=False)
        visual.positional_embedding = torch.nn.Parameter(torch.cat([cls, grid[0].flatten(1).T]), requires_grad=False)
        visual.grid_size = (grid_h * scale, grid_w * scale)
        try:
            yield (clip.image_size[0] * scale, clip.image_size[1] * scale)
        finally:
            visual.positional_embedding, visual.grid_size = original


def _text_directions(clip: ClipModel, pixels: Tensor, prompts, negative_prompts, choice: str) -> tuple[Tensor, Tensor | None]:
    """Per image (B, D): the mean of the prompts' unit embeddings ("mean"), or the one prompt that
    best matches that image ("best": of "blue eyes", "brown eyes", ... the colour it has)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    negative_prompts = [negative_prompts] if isinstance(negative_prompts, str) else list(negative_prompts or [])
    if not prompts:
        raise BridgeError("A mask prompt is needed for a relevance map, e.g. 'eyes'.")
    if choice not in ("mean", "best"):
        raise ValueError(f"Unknown prompt choice {choice!r}; use 'mean' or 'best'.")
    with torch.no_grad():
        text = clip.encode_text(prompts)
        if choice == "best" and len(prompts) > 1:
            image = F.normalize(clip.model.encode_image(pixels), dim=-1)
            positive = text[(image @ text.T).argmax(dim=1)]
        else:
            positive = F.normalize(text.mean(0), dim=-1).expand(pixels.shape[0], -1)
        negative = F.normalize(clip.encode_text(negative_prompts).mean(0), dim=-1) if negative_prompts else None
    return positive, negative


def _shift(images: Tensor, dy: int, dx: int) -> Tensor:
    """Move the content of `images` by (dy, dx) pixels, repeating the edge into the gap."""
    if dy == 0 and dx == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + height, left : left + width]


def relevance_maps(
    clip: ClipModel,
    images: Tensor,
    prompts: str | list[str],
    negative_prompts: str | list[str] | None = None,
    last_blocks: int | None = None,
    size: tuple[int, int] | None = None,
    shifts: int = 1,
    prompt_choice: str = "mean",
    foreground: Tensor | None = None,
    token_scale: int = 1,
    refine: int = 0,
) -> Tensor:
    """Relevance of `prompts` in `images` (B, 3, H, W), [0, 1] -> maps (B, h, w) in [0, 1].

    `last_blocks`: how many of the last vision blocks to aggregate (None: all). `size`: output
    size, default the images' size. `shifts`: sub-patch offsets per axis; with s > 1 the map is
    computed for s x s copies of the image moved by multiples of patch / s pixels and averaged
    after moving each map back, which resolves detail finer than one ViT patch (small parts such
    as eyes cover less than a patch of a 96^2 input). `prompt_choice`: how an ensemble becomes one
    text direction per image (see `_text_directions`). `foreground` (B, h, w) in [0, 1]: where the
    object is (a render's opacity); the map is multiplied by it before normalisation, since small
    ViTs park global information in background tokens, which then look relevant. `token_scale`
    and `refine`: see the module's notes."""
    blocks = _blocks(clip)
    chosen = len(blocks) if last_blocks is None else max(1, min(int(last_blocks), len(blocks)))
    size = size or tuple(images.shape[-2:])
    with torch.no_grad():
        prepared = clip.prepare(images.detach())
        positive, negative = _text_directions(clip, prepared, prompts, negative_prompts, prompt_choice)
    with finer_tokens(clip, int(token_scale)) as input_size:
        maps = _chefer_maps(clip, prepared, positive, negative, chosen, shifts, input_size)
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]
    if foreground is not None:
        maps = maps * F.interpolate(foreground[:, None].to(maps), size=size, mode="bilinear", align_corners=False)[:, 0]
    if refine > 0:
        maps = _refined_at_working_size(maps, images.detach().to(maps), refine)
    return _normalised(maps)


def _refined_at_working_size(maps: Tensor, images: Tensor, iterations: int) -> Tensor:
    """`refine_with_image` at most REFINE_MAX_SIZE pixels across (its cost grows with the cube of
    the width), then back to the maps' size."""
    size = tuple(maps.shape[-2:])
    scale = min(1.0, REFINE_MAX_SIZE / max(size))
    working = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    guide = F.interpolate(images, size=working, mode="bilinear", align_corners=False, antialias=True)
    small = F.interpolate(maps[:, None], size=working, mode="bilinear", align_corners=False, antialias=True)[:, 0]
    refined = refine_with_image(small, guide, iterations)
    return F.interpolate(refined[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def pseudo_label(maps: Tensor, level: float = PSEUDO_LABEL_LEVEL) -> Tensor:
    """A relevance map as a mask to learn: 0 below level/2, 1 above 3 level/2, linear between.

    Inside a part the normalised relevance is mostly well below 1 (about 0.4 on average), so a
    mask fitted to the map itself by MSE stays below 0.5 on most of the part and is cut away when
    the mask is thresholded; the ramp puts 0.5 where the map's best level is."""
    return ((maps - level / 2) / level).clamp(0.0, 1.0)


def relevance_above(maps: Tensor, baseline: Tensor) -> Tensor:
    """What a mask prompt's maps (B, H, W) show beyond a baseline prompt's maps of the same images
    (such as "a face"): their difference, clamped at 0 and normalised again.

    A small ViT parks attention on the eyes whatever the prompt: the head CLIP's "hair" label
    covers a third of the eyes' pixels and its "mouth" label two thirds. A neutral prompt's map has
    the same sink, and the difference removes it (on 24 held-out renders: the hair label on the eyes
    0.34 -> 0.09 with its IoU 0.56 -> 0.58; the mouth label on the eyes 0.67 -> 0.22). Not for a
    part that is itself the sink: the eyes' own IoU falls from 0.40 to 0.16."""
    return _normalised((maps - baseline).clamp_min(0))


def _normalised(maps: Tensor) -> Tensor:
    low = maps.flatten(1).min(dim=1).values.view(-1, 1, 1)
    high = maps.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return (maps - low) / (high - low).clamp_min(1e-8)


@torch.no_grad()
def refine_with_image(
    maps: Tensor,
    images: Tensor,
    iterations: int,
    spatial_sigma: float = REFINE_SPATIAL_SIGMA,
    colour_sigma: float = REFINE_COLOUR_SIGMA,
) -> Tensor:
    """Joint bilateral filtering of `maps` (B, H, W) guided by `images` (B, 3, H, W), [0, 1],
    repeated `iterations` times: each pixel becomes the average of the map around it, weighted by
    distance (Gaussian of `spatial_sigma` x the width) and by colour similarity (Gaussian of
    `colour_sigma`). The weights are computed once; each round spreads relevance one reach further
    within a region of one colour. -> (B, H, W), not normalised."""
    batch, height, width = maps.shape
    sigma = max(spatial_sigma * width, 0.5)
    radius = max(1, round(sigma))
    window = 2 * radius + 1
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    spatial = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2)).view(1, -1, 1)

    def neighbourhoods(x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, window^2, H * W)
        padded = F.pad(x, (radius,) * 4, mode="replicate")
        return F.unfold(padded, window).view(batch, x.shape[1], window * window, height * width)

    colour_distance = (neighbourhoods(images) - images.reshape(batch, 3, 1, height * width)).square().sum(dim=1)
    weights = spatial * torch.exp(-colour_distance / (2 * colour_sigma**2))
    weights = weights / weights.sum(dim=1, keepdim=True)
    for _ in range(iterations):
        maps = (weights * neighbourhoods(maps[:, None])[:, 0]).sum(dim=1).view(batch, height, width)
    return maps


def _pooled_relevance_row(probabilities: list[Tensor], gradients: list[Tensor], pooled_by_token: bool) -> Tensor:
    """The pooled token's row (B, L) of Chefer's R = (I + cam_n) ... (I + cam_1), cam_b = mean over
    heads of clamp(dy/dA_b * A_b, min 0). Only that row is needed, so it is carried from the last
    block back as a row vector: O(L^2) per block instead of the O(L^3) of building R."""
    batch, _, tokens, _ = probabilities[0].shape
    row = torch.zeros(batch, tokens, device=probabilities[0].device)
    if pooled_by_token:
        row[:, 0] = 1.0
    else:  # mean pooling over the patch tokens
        row[:, 1:] = 1.0 / (tokens - 1)
    for attn, grad in reversed(list(zip(probabilities, gradients))):
        cam = (grad * attn).clamp(min=0).mean(dim=1)
        row = row + (row.unsqueeze(1) @ cam).squeeze(1)
    return row


def logit_scale(clip: ClipModel) -> float:
    """The model's own temperature: Chefer's reference differentiates the logit, not the cosine.
    Relevance over several blocks depends on it (R accumulates I + cam_b, and cam_b grows with the
    scale): with y = cos the all-block maps of a ViT-B/32 with sharp attention drift from the
    reference's (map correlation 0.991, top-20% IoU 0.85); with the scale they are identical."""
    scale = getattr(clip.model, "logit_scale", None)
    return float(scale.exp()) if isinstance(scale, torch.Tensor) else 1.0


def _chefer_maps(
    clip: ClipModel, prepared: Tensor, positive: Tensor, negative: Tensor | None, chosen: int, shifts: int, input_size: tuple[int, int]
) -> Tensor:
    """Raw relevance (B, 1, h, w) of the last `chosen` blocks, averaged over the sub-patch shifts."""
    visual = clip.model.visual
    if tuple(prepared.shape[-2:]) != tuple(input_size):
        prepared = F.interpolate(prepared, size=input_size, mode="bilinear", align_corners=False)
    grid_h, grid_w = visual.grid_size
    step_y, step_x = input_size[0] // grid_h // max(shifts, 1), input_size[1] // grid_w // max(shifts, 1)
    offsets = [(i * step_y, j * step_x) for i in range(max(shifts, 1)) for j in range(max(shifts, 1))]
    batch = torch.cat([_shift(prepared, dy, dx) for dy, dx in offsets])
    positive = positive.repeat(len(offsets), 1)
    with torch.enable_grad(), captured_attention(clip) as attention:
        pixels = batch.requires_grad_(True)
        embedding = F.normalize(clip.model.encode_image(pixels), dim=-1)
        score = (embedding * positive.to(embedding.device)).sum(dim=-1)
        if negative is not None:
            score = score - embedding @ negative.to(embedding.device)
        score = score * logit_scale(clip)
        gradients = torch.autograd.grad(score.sum(), attention[-chosen:])
        probabilities = [a.detach() for a in attention[-chosen:]]
    row = _pooled_relevance_row(probabilities, gradients, pooled_by_token=getattr(visual, "pool_type", "tok") == "tok")
    maps = row[:, 1:].reshape(-1, 1, grid_h, grid_w)
    maps = F.interpolate(maps, size=input_size, mode="bilinear", align_corners=False)
    maps = maps.view(len(offsets), prepared.shape[0], 1, *input_size)
    return torch.stack([_shift(m, -dy, -dx) for m, (dy, dx) in zip(maps, offsets)]).mean(dim=0)
