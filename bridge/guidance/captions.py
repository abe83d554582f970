"""Captions of ProcHead heads, generated from their ground-truth parameters.

A caption names a few attributes ("blue eyes", "long red hair", "an open mouth") in one of several
sentence templates with paraphrased wording. Each caption also keeps the facts it states, so that
training can tell which other heads of a batch it describes too (they are positives, not
negatives), and the zero-shot benchmark can ask "which eye colour?" with one prompt per value.

Sizes are named only at their extremes (lowest and highest third of the range): the middle third
is neither "small" nor "big" (nor "pale" nor "red"), and a caption that says so would teach noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bridge.prior.params import EYE_COLOURS, HAIR_COLOURS

# attribute -> {value: paraphrases}; values are those of `describe`.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "eye_colour": {c: (f"{c} eyes", f"{c} irises") for c in EYE_COLOURS},
    "hair_colour": {
        **{c: (f"{c} hair",) for c in HAIR_COLOURS},
        "blonde": ("blonde hair", "blond hair"),
        "grey": ("grey hair", "gray hair"),
        "black": ("black hair", "dark hair"),
    },
    "hair_length": {"short": ("short hair", "a short haircut"), "long": ("long hair", "hair down to the shoulders")},
    "mouth": {"open": ("an open mouth", "a wide open mouth"), "closed": ("a closed mouth", "closed lips")},
    "nose": {"small": ("a small nose", "a tiny nose"), "big": ("a big nose", "a large nose")},
    "skin_tone": {"light": ("light skin", "pale skin"), "dark": ("dark skin", "dark brown skin")},
    "lips": {"pale": ("pale lips",), "red": ("red lips", "bright red lips")},
    "eyebrows": {"thin": ("thin eyebrows",), "thick": ("thick eyebrows", "bushy eyebrows")},
    "ears": {"small": ("small ears",), "big": ("big ears", "large ears")},
    "eyes": {"small": ("small eyes",), "big": ("big eyes", "large eyes")},
    "jaw": {"pointed": ("a pointed chin", "a narrow jaw"), "square": ("a square jaw", "a wide jaw")},
}
TEMPLATES = (
    "a head with {}",
    "a 3D head with {}",
    "a render of a head with {}",
    "a person with {}",
    "a face with {}",
    "a portrait of someone with {}",
    "{}",
)
ATTRIBUTE_WEIGHTS = {
    "eye_colour": 6.0,
    "hair_colour": 1.5,
    "hair_length": 1.0,
    "mouth": 2.0,
    "nose": 4.0,
    "skin_tone": 1.0,
    "lips": 4.0,
    "eyebrows": 1.0,
    "ears": 1.0,
    "eyes": 1.0,
    "jaw": 1.0,
}
"""How often captions name each attribute: the small details (iris colour, nose size, lip colour)
most, since hair and skin are learnt within a few hundred steps while they lag behind."""
ZERO_SHOT_ATTRIBUTES = ("eye_colour", "hair_colour", "hair_length", "mouth", "nose", "skin_tone", "lips")
"""The attributes `attr_top1` averages over: the ones edits are about."""


@dataclass(frozen=True)
class Caption:
    text: str
    facts: tuple[tuple[str, str], ...]

    def holds_for(self, attributes: dict[str, str]) -> bool:
        return all(attributes.get(name) == value for name, value in self.facts)


def nameable(attributes: dict[str, str]) -> dict[str, str]:
    """The attributes of one head that a caption may state (extremes only for sizes)."""
    return {name: value for name, value in attributes.items() if name in PHRASES and value in PHRASES[name]}


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption(attributes: dict[str, str], rng: random.Random, max_facts: int = 3) -> Caption:
    """A random caption that is true of a head with `attributes` (from `describe`)."""
    available = nameable(attributes)
    names = list(available)
    count = min(len(names), max_facts, rng.choice((1, 1, 2, 2, 3)))
    weights = [ATTRIBUTE_WEIGHTS[n] for n in names]
    chosen: list[str] = []
    while len(chosen) < count:
        name = rng.choices(names, weights)[0]
        if name not in chosen:
            chosen.append(name)
    phrases = [rng.choice(PHRASES[name][available[name]]) for name in chosen]
    text = rng.choice(TEMPLATES).format(_join(phrases))
    return Caption(text, tuple((name, available[name]) for name in chosen))


def zero_shot_prompts(attribute: str) -> dict[str, str]:
    """value -> the prompt that asks for it, e.g. {"blue": "a head with blue eyes", ...}."""
    return {value: TEMPLATES[0].format(phrases[0]) for value, phrases in PHRASES[attribute].items()}


def mask_prompt_ensemble(mask_prompt: str) -> list[str]:
    """The mask prompt plus every caption phrase that mentions it ("eyes" -> "eyes", "blue eyes",
    "big eyes", ...): relevance averaged over the ways a part is talked about is steadier than
    relevance of the bare word, which captions never use alone."""
    word = mask_prompt.strip().lower()
    phrases = [p for values in PHRASES.values() for options in values.values() for p in options if word and word in p.split()]
    return [mask_prompt.strip()] + sorted(set(phrases))
