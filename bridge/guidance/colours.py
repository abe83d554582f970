"""Colour words and part nouns, and how a CLIP taught only some of them reads the rest.

A CLIP trained on captions (the bundled head CLIP) learnt the colours its captions use for each
part: six eye colours, eight hair colours, red and pale lips. Any other colour word is a token it
never saw in that place, and it reads the prompt as noise: the open model's direction for
"crimson hair" is nearer "blue eyes" (cosine 0.91) than "red hair" (0.47), "chocolate eyes" is
"blue eyes" (0.84), "platinum hair" is "red hair" (0.85).

So for such a CLIP a colour word goes through its basic colour term (Berlin and Kay's eleven:
crimson and scarlet are red, emerald and jade green, chocolate brown, golden yellow) to the word
the captions use for that term on that part (a yellow on hair is "blonde", on eyes "amber"), and
the user is told what was read. A word whose term the part was never captioned with ("violet
eyes") is left as typed, with a sentence saying which colours the CLIP knows there. A CLIP that
was not trained on these captions (any open_clip model) reads prompts as typed. Part nouns its
captions never use are read the same way, as their part's own word ("locks" -> "hair").
"""

from __future__ import annotations

import functools
import re

from bridge.guidance.captions import PHRASES

BASIC_TERM: dict[str, str] = {
    **{term: term for term in ("black", "white", "red", "green", "yellow", "blue", "brown", "purple", "pink", "orange", "grey")},
    "gray": "grey",
    # reds
    "crimson": "red", "scarlet": "red", "ruby": "red", "cherry": "red", "maroon": "red", "burgundy": "red", "wine": "red",
    "ginger": "red", "copper": "red", "auburn": "red", "strawberry": "red", "vermilion": "red", "carmine": "red",
    "cardinal": "red", "reddish": "red", "rust": "red", "russet": "red", "titian": "red", "cinnamon": "red",
    # pinks
    "rose": "pink", "rosy": "pink", "coral": "pink", "salmon": "pink", "fuchsia": "pink", "blush": "pink", "pinkish": "pink",
    "bubblegum": "pink", "peach": "pink",
    # oranges
    "tangerine": "orange", "apricot": "orange", "pumpkin": "orange", "orangish": "orange", "amber": "orange",
    # yellows
    "golden": "yellow", "gold": "yellow", "blonde": "yellow", "blond": "yellow", "honey": "yellow", "lemon": "yellow",
    "canary": "yellow", "mustard": "yellow", "flaxen": "yellow", "straw": "yellow", "sandy": "yellow", "platinum": "yellow",
    "yellowish": "yellow", "butter": "yellow",
    # greens
    "emerald": "green", "jade": "green", "olive": "green", "lime": "green", "mint": "green", "forest": "green",
    "sage": "green", "moss": "green", "greenish": "green", "viridian": "green", "chartreuse": "green",
    # blues
    "sapphire": "blue", "azure": "blue", "cobalt": "blue", "navy": "blue", "cerulean": "blue", "cyan": "blue",
    "teal": "blue", "turquoise": "blue", "aqua": "blue", "aquamarine": "blue", "indigo": "blue", "ultramarine": "blue",
    "bluish": "blue", "denim": "blue", "steel": "blue", "ice": "blue", "icy": "blue",
    # purples
    "violet": "purple", "lilac": "purple", "lavender": "purple", "amethyst": "purple", "plum": "purple", "mauve": "purple",
    "magenta": "purple", "purplish": "purple", "grape": "purple", "orchid": "purple",
    # browns
    "chocolate": "brown", "chestnut": "brown", "hazel": "brown", "coffee": "brown", "mocha": "brown", "caramel": "brown",
    "mahogany": "brown", "umber": "brown", "tawny": "brown", "bronze": "brown", "tan": "brown", "beige": "brown", "brunette": "brown",
    "brownish": "brown", "cocoa": "brown", "espresso": "brown", "walnut": "brown", "toffee": "brown", "sepia": "brown",
    # greys
    "silver": "grey", "silvery": "grey", "ash": "grey", "ashen": "grey", "slate": "grey", "pewter": "grey", "steely": "grey",
    "greyish": "grey", "grayish": "grey", "smoky": "grey", "smokey": "grey", "charcoal": "grey", "stormy": "grey",
    # blacks and whites
    "ebony": "black", "jet": "black", "raven": "black", "onyx": "black", "inky": "black", "obsidian": "black",
    "snow": "white", "snowy": "white", "ivory": "white", "pearl": "white", "milky": "white", "cream": "white",
}  # fmt: skip
"""Colour words -> their basic colour term, as a colour is named in English: by its meaning on a
head where that differs from the paint ("ginger" and "copper" hair are red, "platinum" blonde)."""

PART_OF_ATTRIBUTE = {"eye_colour": "eyes", "hair_colour": "hair", "lips": "lips"}
"""The caption attributes that name a part's colour, and that part."""
COVERS = {"amber": ("orange", "yellow"), "red": ("red", "orange"), "grey": ("grey", "white")}
"""Caption colour words that stand for more than their own term: golden eyes are amber ones,
orange hair is what the captions call red, and white hair grey."""


def _taught_colours() -> tuple[dict[str, dict[str, str]], dict[str, frozenset[str]]]:
    """From the caption phrases: part -> {basic term: the caption word for it on that part}, and
    part -> every colour word its phrases use ("hazel", "blond" and "gray" too)."""
    terms: dict[str, dict[str, str]] = {}
    words: dict[str, frozenset[str]] = {}
    for attribute, part in PART_OF_ATTRIBUTE.items():
        by_term = terms.setdefault(part, {})
        for value in PHRASES[attribute]:
            if value in BASIC_TERM:
                for term in COVERS.get(value, (BASIC_TERM[value],)):
                    by_term.setdefault(term, value)
        used = {w for phrases in PHRASES[attribute].values() for w in " ".join(phrases).split() if w in BASIC_TERM}
        words[part] = frozenset(used)
    return terms, words


TAUGHT, TAUGHT_WORDS = _taught_colours()
COLOUR_PART = {"eyes": "eyes", "hair": "hair", "mouth": "lips"}
"""Parts of the instruction grammar's part table (`instructions.PARTS`) -> the part whose caption
colours (`TAUGHT`) their colour words are read in."""


@functools.cache
def _part_nouns() -> dict[str, str]:
    """Words of the part table the captions never use -> their part's own word ("locks" -> "hair",
    "pupils" -> "eyes", "brows" -> "eyebrows"). Not the mouth's: a smile or teeth are not a mouth."""
    from bridge.guidance.instructions import PARTS  # the part table; it imports this lexicon

    used = {w for values in PHRASES.values() for phrases in values.values() for phrase in phrases for w in phrase.split()}
    return {word: names[0] for part, names in PARTS.items() if part != "mouth" for word in names if word not in used}


def read_in_captions(edit: str, mask: str) -> tuple[str, str | None]:
    """An edit prompt as a CLIP trained on the captions reads it best -> (prompt, a sentence saying
    what was read otherwise, or None). Colour words change on a part with caption colours, and part
    nouns the captions never use become the part's own word; every other word stays."""
    from bridge.guidance.instructions import part_of_mask

    part = COLOUR_PART.get(part_of_mask(mask))
    taught, known = (TAUGHT[part], TAUGHT_WORDS[part]) if part else ({}, frozenset())
    nouns = _part_nouns()
    words = re.split(r"[\s-]+", edit.strip())  # "sapphire-blue" is two colour words
    keys = [re.sub(r"[^a-z]", "", w.lower()) for w in words]
    has_taught = any(k in known for k in keys)
    read, replaced, untaught = [], [], []
    for word, key in zip(words, keys):
        if key in nouns:
            replaced.append((key, nouns[key]))
            read.append(nouns[key])
        elif key not in BASIC_TERM or part is None or key in known:
            read.append(word)
        elif has_taught:  # a modifier of a colour it knows: "jet black", "strawberry blonde"
            replaced.append((key, None))
        elif BASIC_TERM[key] in taught:
            new = taught[BASIC_TERM[key]]
            replaced.append((key, new))
            if not read or read[-1].lower() != new:
                read.append(new)
        else:
            untaught.append(key)
            read.append(word)
    if not replaced and not untaught:
        return edit, None
    text = " ".join(read)
    if untaught:
        names = ", ".join(sorted(known))
        return text, f"The head CLIP was not taught {' or '.join(untaught)} for the {part} (it knows {names}); the edit may do little."
    said = ", ".join(f"'{old}' as '{new}'" if new else f"'{old}' left out" for old, new in replaced)
    return text, f"Read '{edit}' as '{text}' ({said}): the head CLIP knows only the words its captions use."


def edit_prompt_for(clip, edit: str, mask: str) -> tuple[str, str | None]:
    """The edit prompt as `clip` reads it best, and a sentence when that is not as typed: read
    through the caption words for a CLIP trained on them (`read_in_captions`), as typed for any other."""
    return read_in_captions(edit, mask) if getattr(clip, "taught_by_captions", False) else (edit, None)
