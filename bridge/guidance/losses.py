"""The CLIP losses that drive an edit: LENeRF's contrastive direction loss (Eq. 8), the
directional cosine loss, and StyleCLIP's global loss.

Both compare the CLIP-space direction q = E_I(aug(I_edited)) - E_I(aug(I_source)) with the
direction the prompt asks for. The contrastive form (LENeRF) uses the positives
{E(t_edit) - E_I(aug(I_source)), E(t_edit) - E_T(t_src_j)} against the negatives
{E_T(t_src_j) - E_I(aug(I_source))}, the latter rewarding a change that merely makes the image
look more like a neutral head. E(t_edit) is the text embedding of the edit prompt, or the image
embedding of a reference picture (an image prompt, as 3DPE allows). The reference directions s
are unit vectors and q is not: the logits q.s / temperature grow with the size of the change, so
the loss keeps asking for a clearer edit instead of being satisfied by a faint one in the right
direction (with q normalised too, a barely visible tint scores as well as blue eyes). The loss is averaged over the plain view and `augment_copies` augmented views,
with the same augmentation applied to the edited and the source image.

The global loss, 1 - cos(E_I(aug(I_edited)), E(t_edit)), asks only that the edited picture match
the prompt, as StyleCLIP's latent mapper is trained. The direction losses compare a change with
where it should go, and for a change that must travel far they can have a barrier on the way: on
the prior's straight path in w from a black- or green-haired head to its red-haired twin the
contrastive loss rises from 0.6 to 1.0-1.5 before it falls to 0.01, so a mapper that starts at
the identity never crosses; the picture's similarity to "red hair" rises all the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.guidance.augment import AugmentConfig, random_corners, warp
from bridge.guidance.clip import ClipModel

CLIP_LOSS_KINDS = ("contrastive", "directional", "global")
NEUTRAL_PROMPTS = ("a head", "a render of a head", "a 3D head", "a photo of a person", "a face")


@dataclass(frozen=True)
class ClipLossConfig:
    kind: str = "contrastive"
    """"contrastive" (LENeRF Eq. 8), "directional" (1 - cos(q, E_T(t_edit) - E_T(t_src))) or
    "global" (1 - cos(E_I(I_edited), E(t_edit)), StyleCLIP)."""
    neutral_prompts: tuple[str, ...] = NEUTRAL_PROMPTS
    augment_copies: int = 4
    temperature: float = 0.05
    normalize_direction: bool = False
    """Compare only the direction of q (a cosine); the default also rewards its length."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)


class ClipEditLoss:
    """L_CLIP for one edit target; call with edited and source renders (B, 3, H, W) in [0, 1]."""

    def __init__(self, clip: ClipModel, target: str | Tensor, config: ClipLossConfig = ClipLossConfig()):
        if config.kind not in CLIP_LOSS_KINDS:
            raise ValueError(f"Unknown CLIP loss {config.kind!r}; use one of {', '.join(CLIP_LOSS_KINDS)}.")
        self.clip = clip
        self.config = config
        with torch.no_grad():
            if isinstance(target, str):
                self.target = clip.encode_text([target])[0]
            else:
                self.target = clip.encode_image(target[None] if target.dim() == 3 else target).mean(0)
            self.neutral = clip.encode_text(list(config.neutral_prompts))

    def views(self, edited: Tensor, source: Tensor, generator: torch.Generator | None = None) -> list[tuple[Tensor, Tensor]]:
        """The plain pair plus `augment_copies` pairs, each pair sharing one augmentation."""
        pairs = [(edited, source)]
        size = tuple(edited.shape[-2:])
        for _ in range(self.config.augment_copies):
            corners = random_corners(edited.shape[0], self.config.augment, generator).to(edited.device)
            pairs.append((warp(edited, corners, size), warp(source, corners, size)))
        return pairs

    def __call__(self, edited: Tensor, source: Tensor, generator: torch.Generator | None = None) -> Tensor:
        losses = []
        for edited_view, source_view in self.views(edited, source.detach(), generator):
            e_edit = self.clip.encode_image(edited_view)
            if self.config.kind == "global":
                losses.append(1 - F.cosine_similarity(e_edit, self.target.to(e_edit.device)[None], dim=-1).mean())
                continue
            with torch.no_grad():
                e_source = self.clip.encode_image(source_view)
            losses.append(self.direction_loss(e_edit - e_source, e_source))
        return torch.stack(losses).mean()

    def direction_loss(self, q: Tensor, e_source: Tensor) -> Tensor:
        """q (B, D) edit directions, e_source (B, D) source embeddings -> mean loss."""
        target = self.target.to(q.device)
        neutral = self.neutral.to(q.device)
        if self.config.normalize_direction or self.config.kind == "directional":
            q = F.normalize(q, dim=-1)
        text_direction = F.normalize(target[None] - neutral, dim=-1)  # (J, D)
        if self.config.kind == "directional":
            return (1 - q @ text_direction.T).mean()
        to_target = F.normalize(target[None] - e_source, dim=-1)  # (B, D)
        to_neutral = F.normalize(neutral[None] - e_source[:, None], dim=-1)  # (B, J, D)
        positives = torch.cat([(q * to_target).sum(-1, keepdim=True), q @ text_direction.T], dim=1)
        negatives = (q[:, None] * to_neutral).sum(-1)
        logits = torch.cat([positives, negatives], dim=1) / self.config.temperature
        return (torch.logsumexp(logits, dim=1) - torch.logsumexp(logits[:, : positives.shape[1]], dim=1)).mean()
