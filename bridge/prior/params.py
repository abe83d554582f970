"""Parameters of ProcHead, the procedural parametric head family.

A head is a vector of `PARAM_DIM` continuous raw values, one per `ParamSpec`, each within
[low, high]. Colours are parameters too (three channels each): sampling picks a palette entry and
adds a little jitter, so the vector stays continuous while `describe` can still name the colour.
Sizes are mostly multipliers around 1, amounts are in [0, 1]; `bridge.prior.analytic` turns the
vector into geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ParamSpec:
    name: str
    low: float
    high: float
    doc: str


PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("head_width", 0.90, 1.10, "skull width multiplier"),
    ParamSpec("head_height", 0.94, 1.06, "skull height multiplier (also spreads the features)"),
    ParamSpec("head_depth", 0.92, 1.08, "skull depth (front to back) multiplier"),
    ParamSpec("jaw_width", 0.68, 1.00, "width of the lower face at the chin relative to the cheeks"),
    ParamSpec("skin_tone", 0.0, 1.0, "position on the light -> dark skin ramp"),
    ParamSpec("eye_r", 0.0, 1.0, "iris colour, red"),
    ParamSpec("eye_g", 0.0, 1.0, "iris colour, green"),
    ParamSpec("eye_b", 0.0, 1.0, "iris colour, blue"),
    ParamSpec("eye_size", 0.85, 1.25, "eyeball radius multiplier"),
    ParamSpec("eye_spacing", 0.060, 0.076, "half distance between the eye centres (box units)"),
    ParamSpec("hair_r", 0.0, 1.0, "hair colour, red"),
    ParamSpec("hair_g", 0.0, 1.0, "hair colour, green"),
    ParamSpec("hair_b", 0.0, 1.0, "hair colour, blue"),
    ParamSpec("hair_length", 0.0, 1.0, "0: short crop above the ears .. 1: long, down to the shoulders"),
    ParamSpec("hair_volume", 0.0, 1.0, "thickness of the hair layer"),
    ParamSpec("hairline", 0.0, 1.0, "height of the front hairline (0: low forehead, 1: high)"),
    ParamSpec("eyebrow_thickness", 0.0, 1.0, "eyebrow thickness"),
    ParamSpec("brow_height", 0.0, 1.0, "height of the eyebrows above the eyes"),
    ParamSpec("nose_size", 0.70, 1.60, "nose length, protrusion and width multiplier"),
    ParamSpec("mouth_open", 0.0, 1.0, "0: closed .. 1: wide open"),
    ParamSpec("mouth_width", 0.0, 1.0, "width of the lips"),
    ParamSpec("lip_redness", 0.0, 1.0, "0: lips close to the skin colour .. 1: red lips"),
    ParamSpec("ear_size", 0.80, 1.30, "ear size multiplier"),
)
PARAM_NAMES: tuple[str, ...] = tuple(spec.name for spec in PARAM_SPECS)
PARAM_DIM: int = len(PARAM_SPECS)
PARAM_INDEX: dict[str, int] = {name: i for i, name in enumerate(PARAM_NAMES)}

EYE_COLOURS: dict[str, tuple[float, float, float]] = {
    "brown": (0.42, 0.22, 0.08),
    "blue": (0.12, 0.42, 0.92),
    "green": (0.16, 0.66, 0.26),
    "grey": (0.62, 0.66, 0.70),
    "hazel": (0.60, 0.48, 0.16),
    "amber": (0.88, 0.56, 0.08),
}
EYE_COLOUR_WEIGHTS: dict[str, float] = {
    "brown": 0.34,
    "blue": 0.20,
    "green": 0.14,
    "grey": 0.10,
    "hazel": 0.12,
    "amber": 0.10,
}

HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.07, 0.06, 0.06),
    "brown": (0.40, 0.24, 0.12),
    "blonde": (0.92, 0.78, 0.44),
    "red": (0.78, 0.24, 0.08),
    "grey": (0.72, 0.72, 0.72),
    "blue": (0.12, 0.30, 0.88),
    "pink": (0.96, 0.44, 0.72),
    "green": (0.16, 0.70, 0.30),
}
HAIR_COLOUR_WEIGHTS: dict[str, float] = {
    "black": 0.25,
    "brown": 0.25,
    "blonde": 0.17,
    "red": 0.12,
    "grey": 0.09,
    "blue": 0.04,
    "pink": 0.04,
    "green": 0.04,
}

COLOUR_JITTER = 0.03
MOUTH_CLOSED_PROBABILITY = 0.5
MOUTH_OPEN_RANGE = (0.3, 1.0)

_COLOUR_GROUPS = {"eye_colour": ("eye", EYE_COLOURS), "hair_colour": ("hair", HAIR_COLOURS)}


def _bounds(device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    low = torch.tensor([s.low for s in PARAM_SPECS], dtype=torch.float32, device=device)
    high = torch.tensor([s.high for s in PARAM_SPECS], dtype=torch.float32, device=device)
    return low, high


def _palette_sample(
    palette: dict[str, tuple[float, float, float]],
    weights: dict[str, float],
    batch: int,
    generator: torch.Generator,
) -> Tensor:
    colours = torch.tensor([palette[name] for name in weights], dtype=torch.float32)
    probs = torch.tensor(list(weights.values()), dtype=torch.float32)
    choice = torch.multinomial(probs, batch, replacement=True, generator=generator)
    jitter = COLOUR_JITTER * torch.randn(batch, 3, generator=generator)
    return (colours[choice] + jitter).clamp(0.0, 1.0)


def sample_params(batch: int, generator: torch.Generator) -> Tensor:
    """Draw `batch` heads -> (batch, PARAM_DIM) raw float32 values within [low, high].

    Most parameters are uniform; colours come from weighted palettes (dyed hair is rare) and the
    mouth is closed (exactly 0) for about half of the heads.
    """
    low, high = _bounds()
    params = low + (high - low) * torch.rand(batch, PARAM_DIM, generator=generator)

    eye = _palette_sample(EYE_COLOURS, EYE_COLOUR_WEIGHTS, batch, generator)
    hair = _palette_sample(HAIR_COLOURS, HAIR_COLOUR_WEIGHTS, batch, generator)
    closed = torch.rand(batch, generator=generator) < MOUTH_CLOSED_PROBABILITY
    lo, hi = MOUTH_OPEN_RANGE
    opening = lo + (hi - lo) * torch.rand(batch, generator=generator)

    eye_at = PARAM_INDEX["eye_r"]
    hair_at = PARAM_INDEX["hair_r"]
    params[:, eye_at : eye_at + 3] = eye
    params[:, hair_at : hair_at + 3] = hair
    params[:, PARAM_INDEX["mouth_open"]] = torch.where(closed, torch.zeros_like(opening), opening)
    return params


def params_from_seed(seed: int) -> Tensor:
    """The head of an integer seed -> (PARAM_DIM,); identical on every machine."""
    generator = torch.Generator().manual_seed(int(seed))
    return sample_params(1, generator)[0]


def normalize(params: Tensor) -> Tensor:
    """Raw values (..., PARAM_DIM) -> [-1, 1] per parameter."""
    low, high = _bounds(params.device)
    return 2.0 * (params - low) / (high - low) - 1.0


def denormalize(x: Tensor) -> Tensor:
    """Inverse of `normalize`: (..., PARAM_DIM) in [-1, 1] -> raw values."""
    low, high = _bounds(x.device)
    return low + (x + 1.0) * 0.5 * (high - low)


def _nearest(palette: dict[str, tuple[float, float, float]], rgb: Tensor) -> str:
    names = list(palette)
    colours = torch.tensor([palette[n] for n in names], dtype=torch.float32)
    return names[int(((colours - rgb.float().cpu()) ** 2).sum(-1).argmin())]


def _bin(value: float, edges: tuple[float, ...], words: tuple[str, ...]) -> str:
    for edge, word in zip(edges, words):
        if value < edge:
            return word
    return words[-1]


def _relative(params: Tensor, name: str) -> float:
    spec = PARAM_SPECS[PARAM_INDEX[name]]
    return (float(params[PARAM_INDEX[name]]) - spec.low) / (spec.high - spec.low)


def describe(params: Tensor) -> dict[str, str]:
    """Human-readable attributes of one head (PARAM_DIM,), for captions."""
    p = params.detach()
    at = PARAM_INDEX
    rel = lambda name: _relative(p, name)  # noqa: E731
    return {
        "eye_colour": _nearest(EYE_COLOURS, p[at["eye_r"] : at["eye_r"] + 3]),
        "hair_colour": _nearest(HAIR_COLOURS, p[at["hair_r"] : at["hair_r"] + 3]),
        "hair_length": _bin(rel("hair_length"), (0.34, 0.67), ("short", "medium", "long")),
        "hair_volume": _bin(rel("hair_volume"), (0.34, 0.67), ("thin", "medium", "thick")),
        "mouth": "open" if float(p[at["mouth_open"]]) >= 0.15 else "closed",
        "nose": _bin(rel("nose_size"), (0.34, 0.67), ("small", "medium", "big")),
        "skin_tone": _bin(rel("skin_tone"), (0.34, 0.67), ("light", "medium", "dark")),
        "eyes": _bin(rel("eye_size"), (0.34, 0.67), ("small", "medium", "big")),
        "eyebrows": _bin(rel("eyebrow_thickness"), (0.34, 0.67), ("thin", "medium", "thick")),
        "lips": _bin(rel("lip_redness"), (0.34, 0.67), ("pale", "medium", "red")),
        "mouth_width": _bin(rel("mouth_width"), (0.34, 0.67), ("narrow", "medium", "wide")),
        "ears": _bin(rel("ear_size"), (0.34, 0.67), ("small", "medium", "big")),
        "face": _bin(rel("head_width"), (0.34, 0.67), ("narrow", "medium", "wide")),
        "jaw": _bin(rel("jaw_width"), (0.34, 0.67), ("pointed", "medium", "square")),
        "forehead": _bin(rel("hairline"), (0.34, 0.67), ("low", "medium", "high")),
    }


def with_overrides(params: Tensor, **named: float | str) -> Tensor:
    """Copy of one head (PARAM_DIM,) with some values replaced.

    Keys are parameter names, or `eye_colour` / `hair_colour` with a palette name (sets the three
    channels). Raises ValueError with a readable message for unknown names or out-of-range values.
    """
    out = params.detach().clone()
    for key, value in named.items():
        if key in _COLOUR_GROUPS:
            prefix, palette = _COLOUR_GROUPS[key]
            if not isinstance(value, str) or value not in palette:
                raise ValueError(f"Unknown {key} {_shown(value)}; choose one of: {', '.join(palette)}.")
            start = PARAM_INDEX[f"{prefix}_r"]
            out[start : start + 3] = torch.tensor(palette[value], dtype=out.dtype, device=out.device)
            continue
        if key not in PARAM_INDEX:
            raise ValueError(f"Unknown head parameter {_shown(key)}; known: {', '.join((*PARAM_NAMES, *_COLOUR_GROUPS))}.")
        spec = PARAM_SPECS[PARAM_INDEX[key]]
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ValueError(f"{key} is a number in [{spec.low}, {spec.high}], not {_shown(value)}.")
        if not spec.low <= number <= spec.high:
            raise ValueError(f"{key} must lie in [{spec.low}, {spec.high}], got {number}.")
        out[PARAM_INDEX[key]] = number
    return out


def _shown(value) -> str:
    """A value as a message quotes it: at most 40 characters of it."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
