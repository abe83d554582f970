"""Heads of an imported EG3D generator, as a head source for the bridge (the same attributes as
bridge.prior.model.HeadPrior). A seed names the head EG3D's own `gen_samples.py --seeds` makes:
z = np.random.RandomState(seed).randn(1, z_dim); the conditioning is the model's frontal camera
label (scaled, or zeroed, by the generator's conditioning_scale); w is truncated toward the average
with psi 0.7 (gen_samples.py's `--trunc=0.7`); the planes' noise is EG3D's noise mode, "const"
unless the bridge is started with another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
NOISE_MODES = ("const", "random", "none")
SEEDS = 2**32
"""numpy's RandomState takes seeds 0 .. 2**32 - 1."""


def seed_z(seed: int, z_dim: int) -> Tensor:
    """EG3D's z for `seed`: np.random.RandomState(seed).randn(1, z_dim), as float32 (1, z_dim)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEEDS:
        raise BridgeError(
            f"An EG3D head's seed is a whole number from 0 to {SEEDS - 1} (as in EG3D's gen_samples.py); {str(seed)[:24]} is not one."
        )
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


class EG3DHeads(HeadSource):
    surface_level = SURFACE_LEVEL

    def __init__(self, generator: TriPlaneGenerator, metadata: dict, noise_mode: str = "const"):
        super().__init__(generator, metadata)
        if noise_mode not in NOISE_MODES:
            raise BridgeError(f"EG3D's noise modes are {', '.join(NOISE_MODES)}; {noise_mode!r} is not one.")
        generator.noise_mode = noise_mode
        self.name = f"EG3D {metadata.get('source', 'generator')}"

    @classmethod
    def load(cls, path: Path | str, device: str | torch.device = "cpu", noise_mode: str = "const") -> "EG3DHeads":
        generator, metadata = load_generator(Path(path), HINT, device)
        return cls(generator, metadata, noise_mode)

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
        with torch.no_grad():
            ws = self.ws(seed_z(seed, self.generator.config.z_dim))[0].cpu()
        return ws, {"source": "eg3d", "seed": seed, "truncation_psi": TRUNCATION_PSI, "noise_mode": self.generator.noise_mode}
