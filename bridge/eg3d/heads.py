"""Heads of an imported EG3D generator, as a head source for the bridge (the same attributes as
bridge.prior.model.HeadPrior): a seed gives z ~ N(0, I); the conditioning is the model's frontal
camera label (scaled, or zeroed, by the generator's conditioning_scale); w is truncated toward the
average with psi 0.7, as EG3D's own scripts do."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from bridge.errors import BridgeError
from bridge.field.cameras import camera_label
from bridge.field.generator import TriPlaneGenerator
from bridge.field.source import HeadSource
from bridge.field.weights import load_generator

TRUNCATION_PSI = 0.7
SURFACE_LEVEL = 10.0
"""EG3D extracts its shapes at raw density 10."""
HINT = "import the checkpoint again with `python -m bridge import-eg3d FILE --out DIR`"


class EG3DHeads(HeadSource):
    surface_level = SURFACE_LEVEL

    def __init__(self, generator: TriPlaneGenerator, metadata: dict):
        super().__init__(generator, metadata)
        self.name = f"EG3D {metadata.get('source', 'generator')}"

    @classmethod
    def load(cls, path: Path | str, device: str | torch.device = "cpu") -> "EG3DHeads":
        generator, metadata = load_generator(Path(path), HINT, device)
        return cls(generator, metadata)

    def conditioning(self, batch: int) -> Tensor:
        config = self.generator.config
        if config.c_dim != 25:
            return torch.zeros(batch, config.c_dim, device=self.device)
        label = camera_label(config.render.orbit(0.0, 0.0), config.render.intrinsics())
        return label.to(self.device).expand(batch, -1)

    def ws(self, z: Tensor) -> Tensor:
        z = z.to(self.device)
        return self.generator.map(z, self.conditioning(len(z)), truncation_psi=TRUNCATION_PSI)

    def sample_ws(self, batch: int, generator: torch.Generator) -> Tensor:
        with torch.no_grad():
            return self.ws(torch.randn(batch, self.generator.config.z_dim, generator=generator))

    def head_ws(self, seed: int, overrides: dict | None = None) -> tuple[Tensor, dict]:
        if overrides:
            raise BridgeError("An EG3D generator has no prior parameters to override; give only a seed (or a latent).")
        z = torch.randn(1, self.generator.config.z_dim, generator=torch.Generator().manual_seed(int(seed)))
        with torch.no_grad():
            ws = self.ws(z)[0].cpu()
        return ws, {"source": "eg3d", "seed": seed, "truncation_psi": TRUNCATION_PSI}
