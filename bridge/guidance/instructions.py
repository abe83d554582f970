"""Instruction sentences ("make the eyes green", "give her pink hair", "open the mouth wide") as an
(edit prompt, mask prompt) pair, parsed locally: no language model can be had here.

A small grammar does most of it: the part is the noun that names a part of a head (a synonym
table), the edit is that noun with the words that describe the change (adjectives, and the state
a verb asks for: "open", "close", "lengthen" -> "open", "closed", "long"), and everything else
(verbs of making, articles, pronouns, whom the head belongs to, politeness, "colour of") is left
out, with the words that describe whom ("the old man"). Expressions name their part and state
("make her smile" -> "smiling mouth"), a few words imply a part ("bald" the hair, "lipstick" the
lips), a removal is the look it leaves ("remove the beard" -> "clean-shaven jaw"), and a hex
colour is the nearest colour name. A negation ("don't", "not") is refused
in one sentence: CLIP reads "not green eyes" as green eyes. A noun the table does
not know is matched by CLIP text similarity against the part vocabulary, with whichever CLIP the
bridge uses (the bundled one or a user's): "pupils", "locks" or "complexion" find their part
without being listed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import torch

from bridge.errors import BridgeError
from bridge.guidance.colours import BASIC_TERM

MAX_INSTRUCTION_CHARS = 300
PARTS: dict[str, tuple[str, ...]] = {
    "eyes": ("eyes", "eye", "irises", "iris", "pupils", "pupil", "eyeballs", "eyeball"),
    "hair": ("hair", "hairs", "haircut", "hairstyle", "hairdo", "fringe", "bangs", "locks", "curls", "mane"),
    "mouth": ("mouth", "lips", "lip", "teeth", "smile", "smiles", "grin", "frown", "pout", "laugh"),
    "nose": ("nose", "nostrils", "nostril"),
    "ears": ("ears", "ear"),
    "eyebrows": ("eyebrows", "eyebrow", "brows", "brow"),
    "skin": ("skin", "complexion", "face", "cheeks", "cheek"),
    "jaw": ("jaw", "chin", "jawline"),
}
"""Part -> the words that name it; the first word of each is the part's mask prompt."""
OWN_MASKS = ("irises", "lips")
"""Words that are mask prompts of their own (a smaller region than their part's)."""
SYNONYM_PART = {word: part_words[0] for part_words in PARTS.values() for word in part_words if word not in OWN_MASKS}


def canonical_mask(mask: str) -> str:
    """A mask prompt with every word the part table knows replaced by its part's mask prompt
    ("hairstyle" -> "hair", "the brows" -> "the eyebrows", "pupils" -> "eyes"): the words CLIP
    relevance labels were made for. A small CLIP trained on captions reads an unlisted word like
    any other, so the table is asked first."""
    return " ".join(SYNONYM_PART.get(word.lower(), word) for word in mask.split())


VERB_STATES = {
    "open": "open",
    "opens": "open",
    "opened": "open",
    "close": "closed",
    "shut": "closed",
    "closed": "closed",
    "widen": "wide",
    "enlarge": "big",
    "grow": "long",
    "lengthen": "long",
    "extend": "long",
    "shorten": "short",
    "trim": "short",
    "shrink": "small",
    "darken": "dark",
    "lighten": "light",
    "redden": "red",
    "whiten": "white",
    "thicken": "thick",
    "thin": "thin",
    "narrow": "narrow",
    "straighten": "straight",
    "curl": "curly",
    "brighten": "bright",
    "blacken": "black",
    "sharpen": "sharp",
    "soften": "soft",
    "fatten": "full",
    "glow": "glowing",
    "raise": "raised",
    "lift": "raised",
    "lower": "lowered",
}
"""Verbs that name the state they ask for ("open the mouth" -> "open mouth")."""
FILLER = set(
    """a an the her his their its my your our them him it she he they me you us this that these those
    make makes made turn turns change changes set give gives want wants would like please can could will
    you i i'd id we let lets let's be is are was become becomes into to of so with have has do does
    should must now just bit little some colour color colours colors shade tone look looking
    and also then more very really paint recolour recolor dye love on for in at get add put wish need i'll
    see show appear appears seem seems pair kind sort slightly somewhat much lot too even again
    take swap switch alter modify adjust tweak transform update edit than replace cut ones one prefer prefers
    ok okay thanks thank bye hey hi hello maybe lol pls plz possible as times nothing else no yes""".split()
)
"""Words that carry no part of the edit. "very" and "more" go too: CLIP reads "green eyes" and
"very green eyes" alike, and the strength slider is how much."""
SUBJECTS = set(
    """woman women man men girl boy guy lady gentleman person people character subject model avatar
    someone somebody figure portrait head kid child baby creature""".split()
)
"""Whom the head belongs to ("give the woman blue eyes", "the character's hair"): not the edit, and
nor are the words that describe them ("the old man", "the tall woman's hair")."""
REMOVALS = {"remove", "removes", "delete", "erase", "rid", "shave", "lose", "disappear", "vanish"}
"""Verbs that take something away: a part cannot be taken away, but what REMOVED_LOOK knows can."""
TAKING = ({"take", "wipe", "cut", "shave"}, {"off", "away"})
"""...and "take ... off", "wipe ... away": a verb with its particle."""
REMOVED_LOOK = {
    "beard": ("clean-shaven", "jaw"),
    "bearded": ("clean-shaven", "jaw"),
    "freckles": ("clear", "skin"),
    "freckled": ("clear", "skin"),
    "lipstick": ("natural", "lips"),
    "moustache": ("clean-shaven", "mouth"),
    "mustache": ("clean-shaven", "mouth"),
    "hair": ("bald", "hair"),
}
"""What is left once this is taken away ("remove the beard" -> "clean-shaven jaw")."""
NEGATIONS = {"not", "don't", "dont", "doesn't", "never", "isn't", "aren't", "shouldn't", "less", "undo", "revert"}
"""...and "less blue" (CLIP reads it as blue), "undo the red hair" (it would edit toward red)."""
EXPRESSIONS = {"smile": "smiling", "smiles": "smiling", "grin": "grinning", "frown": "frowning", "pout": "pouting", "laugh": "laughing"}
"""Part words that are a state of their part ("make her smile" -> "smiling mouth")."""
IMPLIED_NOUNS = {
    "bald": "hair",
    "lipstick": "lips",
    "freckles": "skin",
    "freckled": "skin",
    "heterochromia": "eyes",
    "beard": "jaw",
    "bearded": "jaw",
    "moustache": "mouth",
    "mustache": "mouth",
    "tan": "skin",
}
"""Words that name a change of one part without naming it -> the part noun the edit gets."""
PLURALS = {
    "eye": "eyes",
    "iris": "irises",
    "pupil": "pupils",
    "eyeball": "eyeballs",
    "lip": "lips",
    "ear": "ears",
    "eyebrow": "eyebrows",
    "brow": "brows",
}
"""A head has two: "change the eye colour to blue" edits "blue eyes", as captions say it."""
KEEP_INTENSITY = {"bright", "dark", "light", "pale", "deep", "vivid", "wide", "long", "short"}
EXAMPLE_CHANGE = {
    "eyes": "green",
    "hair": "longer",
    "mouth": "open",
    "nose": "smaller",
    "ears": "bigger",
    "eyebrows": "thicker",
    "skin": "paler",
    "jaw": "wider",
}
MIN_PART_SIMILARITY = 0.5
PART_MARGIN = 0.01
"""An unknown noun names a part when its CLIP text cosine to that part's name is at least
MIN_PART_SIMILARITY and PART_MARGIN above both the next part's and a neutral word's."""


COLOUR_WORDS = frozenset(BASIC_TERM) | {"tanned"}
"""Colour names: an edit prompt that names one of these (with TONE_WORDS, a part and filler) changes
how a part looks, not its shape."""
TONE_WORDS = {"bright", "dark", "light", "pale", "deep", "vivid", "fair", "tinted", "dyed", "coloured", "colored"}


def changes_shape(edit: str) -> bool:
    """False when the edit prompt names a colour and nothing else that could change the part ("red
    hair", "bright green irises"): such an edit leaves the shape alone, so a shape change would
    only be the latent's entanglement leaking out of the mask. Any other word ("long", "curly",
    "open", or one this table does not know) may change the shape, so the answer is then True.
    So is a tone without a hue ("dark skin", "pale skin"): measured, those edits need the mask of
    the edited head as well as the source's (texture-only, dark skin's success fell 1.0 -> 0.17)."""
    words = _words(edit)
    colours = [w for w in words if w in COLOUR_WORDS]
    others = [w for w in words if w not in COLOUR_WORDS | TONE_WORDS | FILLER and _part_of_word(w) is None]
    return not colours or bool(others)


@dataclass(frozen=True)
class Instruction:
    sentence: str
    edit: str
    mask: str
    part: str
    found_by: str
    """"grammar" (a listed word) or "clip" (text similarity)."""

    def as_dict(self) -> dict:
        return {"sentence": self.sentence, "edit": self.edit, "mask": self.mask, "part": self.part, "found_by": self.found_by}


def _words(sentence: str) -> list[str]:
    """Lower-case words; a possessive's "'s" goes ("the man's hair" -> "man", "hair"), and a hex
    colour ("#2e8b57") becomes the name of the nearest colour CLIP knows by name."""
    text = unicodedata.normalize("NFKC", sentence).lower()  # full-width letters as ASCII ones
    text = re.sub("[\u200b-\u200d\u2060\ufeff]", "", text)  # zero-width characters split no word
    text = re.sub(r"#([0-9a-f]{8}|[0-9a-f]{6}|[0-9a-f]{4}|[0-9a-f]{3})\b", lambda m: f" {_hex_colour_name(m.group(1))} ", text)
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.replace("\u2019", "'"))  # letters of any script: "rosé" stays whole
    return [w[:-2] if w.endswith("'s") and w not in FILLER else w for w in words]


NAMED_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (220, 30, 30),
    "green": (40, 170, 40),
    "blue": (40, 70, 220),
    "yellow": (240, 220, 30),
    "orange": (245, 140, 20),
    "purple": (130, 40, 170),
    "pink": (245, 130, 190),
    "brown": (120, 70, 30),
    "cyan": (30, 210, 220),
    "magenta": (220, 30, 200),
    "blonde": (230, 200, 120),
}
"""Colours by name, for a hex colour in an instruction: CLIP reads names, not numbers."""


def _hex_colour_name(digits: str) -> str:
    """#rgb, #rgba, #rrggbb or #rrggbbaa (the alpha is left out) -> the nearest NAMED_COLOURS name."""
    if len(digits) in (3, 4):
        digits = "".join(d * 2 for d in digits)
    rgb = [int(digits[i : i + 2], 16) for i in (0, 2, 4)]
    return min(NAMED_COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, NAMED_COLOURS[name])))


def _without_subjects(words: list[str]) -> list[str]:
    """The words less whom the head belongs to and what describes them: the words before a subject
    back to an article, a pronoun or another filler word ("give the old man a beard" -> give the a
    beard), unless one of them names a part or implies one ("give her a bald head" keeps bald)."""
    kept: list[str] = []
    for word in words:
        if word in SUBJECTS:
            while (
                kept
                and kept[-1] not in FILLER
                and _part_of_word(kept[-1]) is None
                and kept[-1] not in REMOVALS | set(VERB_STATES) | set(IMPLIED_NOUNS)
            ):
                kept.pop()
            continue
        kept.append(word)
    return kept


def part_of_mask(mask: str) -> str | None:
    """The part the first word of a mask prompt the part table knows names ("the irises" -> "eyes")."""
    return next((part for part in map(_part_of_word, re.findall(r"[^\W\d_]+", mask.lower())) if part), None)


def _part_of_word(word: str) -> str | None:
    for part, names in PARTS.items():
        if word in names:
            return part
    return None


@torch.no_grad()
def _part_by_clip(clip, candidates: list[str]) -> tuple[int, str] | None:
    """(index of the candidate word, part) that CLIP reads most like one part name, if one stands out:
    its similarity to the part above `MIN_PART_SIMILARITY`, and clear of both the next part and a
    neutral word. A CLIP whose text encoder reads every unknown noun alike (the bundled one, trained
    on captions only) finds nothing, which is the honest answer."""
    if clip is None or not candidates:
        return None
    parts = list(PARTS)
    names = clip.encode_text([PARTS[p][0] for p in parts])
    words = clip.encode_text(candidates)
    neutral = clip.encode_text(["something"])
    top = (words @ names.T).topk(2, dim=1)
    best, second = top.values[:, 0], top.values[:, 1]
    clear = (best >= MIN_PART_SIMILARITY) & (best - second >= PART_MARGIN) & (best - (words @ neutral.T)[:, 0] >= PART_MARGIN)
    if not bool(clear.any()):
        return None
    index = int(torch.where(clear, best - second, torch.full_like(best, -1.0)).argmax())
    return index, parts[int(top.indices[index, 0])]


def _without_origin(words: list[str]) -> list[str]:
    """What the part is now is not the edit: "from brown to black", "green instead of blue", and a
    colour before the part noun when another follows it ("make the brown eyes blue")."""
    if "from" in words:  # "from brown to black", "to red from brown": the span after "from" (to its "to") is the old look
        start = words.index("from")
        end = words.index("to", start) if "to" in words[start:] else len(words)
        words = words[:start] + [w for w in words[start:end] if _part_of_word(w) is not None] + words[end:]
    if "instead" in words:  # what follows "instead (of)" is the old look; a part noun there still names the part
        start = words.index("instead")
        words = words[:start] + [w for w in words[start + 1 :] if _part_of_word(w) is not None]
    describing = [w for w in words if w not in FILLER and _part_of_word(w) is None]
    if len(describing) > 1:  # "the eyes are too blue, make them green": what is "too" so is the part now
        words = [w for i, w in enumerate(words) if not (i and words[i - 1] == "too")]
    noun = next((i for i, w in enumerate(words) if _part_of_word(w) is not None), None)
    if noun is not None and any(w in COLOUR_WORDS for w in words[noun + 1 :]):
        words = [w for i, w in enumerate(words) if not (i < noun and w in COLOUR_WORDS)]
    return words


def _removed(text: str, words: list[str]) -> list[str]:
    """The words of a removal ("remove the beard") as the look it leaves ("clean-shaven jaw"), or
    one sentence when what goes is a part itself, something without a known look, or only some of
    it ("remove the grey hair" is not "bald hair")."""
    gone = next((w for w in words if w in REMOVED_LOOK), None)
    look, noun = REMOVED_LOOK.get(gone, (None, None))
    part = _part_of_word(noun) if noun else None
    verbs = REMOVALS | TAKING[0] | TAKING[1] | {"no"}
    rest = [w for w in words if w not in verbs and w != gone and w not in FILLER and _part_of_word(w) != part]
    if gone is None or rest:
        example = next((f"make the {p} {EXAMPLE_CHANGE[p]}" for p in map(_part_of_word, words) if p), "make the eyes green")
        raise BridgeError(f"The instruction {text[:60]!r} takes something away; say what the part should become instead, e.g. '{example}'.")
    return [look, noun]


def parse_instruction(sentence: str, clip=None) -> Instruction:
    """The (edit, mask) pair of an instruction; one sentence (BridgeError) when it names no part."""
    text = " ".join(str(sentence).split())
    if not text:
        raise BridgeError("The instruction is empty; write what to change, e.g. 'make the eyes green'.")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise BridgeError(f"The instruction has {len(text)} characters; shorten it to at most {MAX_INSTRUCTION_CHARS}.")
    words = [w for w in _without_origin(_without_subjects(_words(text))) if len(w) > 1]
    negation = next((w for w in words if w in NEGATIONS), None)
    if negation is not None:
        raise BridgeError(
            f"The instruction {text[:60]!r} says what not to do ({negation!r}); say what the part should become, e.g. 'make the eyes green'."
        )
    no_more = any(a == "no" and b in REMOVED_LOOK for a, b in zip(words, words[1:]))  # "give him no beard"
    if no_more or any(w in REMOVALS for w in words) or (set(words) & TAKING[0] and set(words) & TAKING[1]):
        words = _removed(text, words)
    found_by = "grammar"
    implied = next((IMPLIED_NOUNS[w] for w in words if w in IMPLIED_NOUNS), None)
    if implied is not None and not any(_part_of_word(w) for w in words):
        words = [*words, implied]
    at = next((i for i, w in enumerate(words) if _part_of_word(w)), None)
    named = list(dict.fromkeys(p for p in map(_part_of_word, words) if p))
    if len(named) > 1:
        raise BridgeError(
            f"The instruction {text[:60]!r} names {' and '.join(named)}; give one edit per instruction (Apply on top stacks the next)."
        )
    if at is not None:
        part = _part_of_word(words[at])
    else:
        candidates = [(i, w) for i, w in enumerate(words) if w not in FILLER and w not in VERB_STATES]
        match = _part_by_clip(clip, [w for _, w in candidates])
        if match is None:
            raise BridgeError(
                f"The instruction {text[:60]!r} names no part of the head; say where, e.g. 'make the eyes green' "
                f"(parts: {', '.join(PARTS)})."
            )
        at, part = candidates[match[0]][0], match[1]
        found_by = "clip"
    noun = words[at]
    describing: list[str] = []
    expression = next((EXPRESSIONS[w] for w in words if w in EXPRESSIONS and _part_of_word(w) == part), None)  # "make the mouth smile"
    noun = PARTS[part][0] if expression else PLURALS.get(noun, noun)
    for i, word in enumerate(words):
        if i == at or _part_of_word(word) == part or _part_of_word(IMPLIED_NOUNS.get(word, "")) not in (None, part):
            continue  # the part itself, or what implies another part ("the man with the beard")
        state = VERB_STATES.get(word)
        if state and state not in describing:
            describing.append(state)
        elif word not in FILLER and word not in VERB_STATES and word not in describing:
            describing.append(word)
    if not describing and not expression:
        raise BridgeError(
            f"The instruction {text[:60]!r} says where ({noun}) but not what to change; e.g. 'make the {PARTS[part][0]} {EXAMPLE_CHANGE[part]}'."
        )
    states = [w for w in describing if w in VERB_STATES.values() and w not in KEEP_INTENSITY]
    others = [w for w in describing if w not in states]
    if part == "mouth" and "open" in states:
        others, states = others + ["open"], [w for w in states if w != "open"]
    edit = " ".join(others + states + ([expression] if expression else []) + [noun])
    mask = noun if noun in OWN_MASKS or found_by == "clip" else PARTS[part][0]
    return Instruction(text, edit, mask, part, found_by)
