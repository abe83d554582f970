"""ProcHead's trained generator: the embedded default head prior.

It is an ordinary TriPlaneGenerator whose mapping network takes the head parameter vector
(normalised to [-1, 1]) as its conditioning label c, and NOISE_DIM numbers of noise as z. So it
has a real w space, while the ground-truth parameters -- and hence the analytic part labels -- of
every head it makes are known. A seed picks both the parameters and the noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bridge.errors import BridgeError, WeightsError
from bridge.field.generator import GeneratorConfig, TriPlaneField, TriPlaneGenerator
from bridge.field.renderer import RenderConfig
from bridge.field.source import HeadSource
from bridge.field.weights import load_generator
from bridge.prior.params import PARAM_DIM, describe, normalize, params_from_seed, sample_params, with_overrides

NOISE_DIM = 16
_NOISE_SEED_OFFSET = 7_919  # keeps a head's noise stream apart from its parameter stream

PRIOR_RENDER = RenderConfig(background=(1.0, 1.0, 1.0), clamp_to_box=True)
SURFACE_LEVEL = 0.0
"""Raw sigma at the surface: ProcHead's analytic sigma changes sign there (EG3D's weights use 10)."""
BUNDLED_WEIGHTS = Path(__file__).parent / "assets" / "prochead.safetensors"
RETRAIN_HINT = "run `python -m bridge train-prior --out DIR` to make one, or reinstall the project to restore the bundled file"


def prochead_generator_config(**overrides) -> GeneratorConfig:
    """The small generator size used for the bundled prior."""
    values = dict(
        z_dim=NOISE_DIM,
        c_dim=PARAM_DIM,
        w_dim=256,
        mapping_layers=2,
        mapping_lr_multiplier=0.1,
        plane_resolution=128,
        plane_channels=32,
        channel_base=4096,
        channel_max=128,
        use_noise=False,
        decoder_hidden=64,
        decoder_features=32,
        decoder_lr_multiplier=10.0,
        render=PRIOR_RENDER,
    )
    values.update(overrides)
    return GeneratorConfig(**values)


@dataclass(frozen=True)
class HeadCode:
    """What identifies a prior head: its raw parameters (P,) and its noise (NOISE_DIM,)."""

    params: Tensor
    noise: Tensor

    @classmethod
    def from_seed(cls, seed: int) -> "HeadCode":
        noise_gen = torch.Generator().manual_seed(int(seed) + _NOISE_SEED_OFFSET)
        return cls(params_from_seed(seed), torch.randn(NOISE_DIM, generator=noise_gen))


class HeadPrior(HeadSource):
    """The bundled generator with the conventions of the prior (conditioning, render settings)."""

    name = "ProcHead prior"
    surface_level = SURFACE_LEVEL

    def __init__(self, generator: TriPlaneGenerator, metadata: dict | None = None):
        if generator.config.c_dim != PARAM_DIM or generator.config.z_dim != NOISE_DIM:
            raise WeightsError(
                f"These generator weights expect c_dim={generator.config.c_dim}, z_dim={generator.config.z_dim}, "
                f"but ProcHead heads have {PARAM_DIM} parameters and {NOISE_DIM} noise values; {RETRAIN_HINT}."
            )
        super().__init__(generator, metadata)

    @classmethod
    def load(cls, path: Path | str | None = None, device: str | torch.device = "cpu") -> "HeadPrior":
        generator, metadata = load_generator(Path(path or BUNDLED_WEIGHTS), RETRAIN_HINT, device)
        return cls(generator, metadata)

    def ws(self, params: Tensor, noise: Tensor, truncation_psi: float = 1.0) -> Tensor:
        """params (B, P) raw, noise (B, NOISE_DIM) -> ws (B, num_ws, w_dim)."""
        device = self.device
        return self.generator.map(noise.to(device), normalize(params.to(device)), truncation_psi=truncation_psi)

    def sample_ws(self, batch: int, generator: torch.Generator) -> Tensor:
        """ws of `batch` random prior heads (parameters drawn as in training, fresh noise)."""
        params = sample_params(batch, generator)
        noise = torch.randn(batch, NOISE_DIM, generator=generator)
        with torch.no_grad():
            return self.ws(params, noise)

    def head_ws(self, seed: int, overrides: dict | None = None) -> tuple[Tensor, dict]:
        """The ws (num_ws, w_dim) of head `seed` with some prior parameters overridden, and its description."""
        code = HeadCode.from_seed(seed)
        params = code.params
        if overrides:
            try:
                params = with_overrides(params, **overrides)
            except ValueError as error:
                raise BridgeError(str(error)) from None
        with torch.no_grad():
            ws = self.ws(params[None], code.noise[None])[0].cpu()
        return ws, {"source": "prior", "seed": seed, "overrides": overrides or {}, "attributes": describe(params)}

    def field(self, params: Tensor, noise: Tensor) -> TriPlaneField:
        return self.generator.field(self.ws(params, noise))

    def field_for(self, code: HeadCode) -> TriPlaneField:
        return self.field(code.params[None], code.noise[None])
