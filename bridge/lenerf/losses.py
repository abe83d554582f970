"""The regularisers of a LENeRF edit, on rendered 2D masks (B, 1, H, W) in [0, 1].

L_mask (MSE against the relevance pseudo-label), total variation (Eq. 9), top-k / bottom-k
sparsity (Eq. 10), the binarisation term, the L2 norm of the latent residual, the identity
slot, and (not in the paper) the deformation's size outside the mask, on 3D points.

LENeRF's identity term is ArcFace, which does not exist for ProcHead heads (and cannot be
downloaded here); its substitute is `preservation`: the edited render must match the source render
where the mask is off, which is what identity preservation means for a local edit.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_loss(rendered: Tensor, pseudo_label: Tensor) -> Tensor:
    return (rendered - pseudo_label).square().mean()


def total_variation(mask: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels (Eq. 9, anisotropic)."""
    return (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean() + (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()


def sparsity(mask: Tensor, fraction: float = 0.1, eps: float = 1e-4) -> Tensor:
    """Eq. 10: -mean log m over the top `fraction` of pixels - mean log(1 - m) over the bottom
    `fraction`, per image: the most relevant pixels go to 1, the least to 0."""
    flat = mask.flatten(1)
    k = max(1, int(fraction * flat.shape[1]))
    top = flat.topk(k, dim=1).values
    bottom = (-flat).topk(k, dim=1).values.neg()
    return -(torch.log(top.clamp_min(eps)).mean() + torch.log((1 - bottom).clamp_min(eps)).mean())


def binarisation(mask: Tensor) -> Tensor:
    """mean(1 - (2m - 1)^2): zero where m is 0 or 1, largest at 0.5 (LENeRF's 1 - m^2 on [-1, 1] masks)."""
    return (1 - (2 * mask - 1).square()).mean()


def residual_l2(dw: Tensor) -> Tensor:
    """||M(w_s)||_2 per head, averaged."""
    return dw.flatten(1).norm(dim=1).mean()


def preservation(edited: Tensor, source: Tensor, mask: Tensor) -> Tensor:
    """The identity slot's substitute: squared colour change where the (detached) mask is off."""
    keep = 1 - mask.detach()
    return (keep * (edited - source).square()).sum() / (3 * keep.sum()).clamp_min(1.0)


def deformation_outside_mask(offsets: Tensor, keep: Tensor) -> Tensor:
    """Mean squared offset (B, M, 3) over the points weighted by `keep` (B, M, 1): where the head
    has matter and the mask is off, the deformation must leave it where it is. The rendered
    preservation term barely sees such a drift (a shifted cheek changes few pixels by little)."""
    return (keep * offsets.square().sum(dim=-1, keepdim=True)).sum() / keep.sum().clamp_min(1.0)
