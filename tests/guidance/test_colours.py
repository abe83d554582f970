"""Colour words a caption-trained CLIP was never taught are read as the caption word for their
basic colour term on that part, and the user is told; the captions' own words pass unchanged."""

import pytest

from bridge.guidance.captions import PHRASES
from bridge.guidance.colours import BASIC_TERM, TAUGHT_WORDS, read_in_captions


@pytest.mark.parametrize(
    "edit, mask, read",
    [
        ("crimson hair", "hair", "red hair"),
        ("ginger hair", "the hair", "red hair"),
        ("golden hair", "hairstyle", "blonde hair"),
        ("golden eyes", "eyes", "amber eyes"),
        ("emerald eyes", "irises", "green eyes"),
        ("chocolate eyes", "eyes", "brown eyes"),
        ("long silver hair", "hair", "long grey hair"),
        ("jet black hair", "hair", "black hair"),
        ("strawberry blonde hair", "hair", "blonde hair"),
        ("sapphire-blue eyes", "eyes", "blue eyes"),
        ("crimson scarlet hair", "hair", "red hair"),
        ("Crimson lips", "mouth", "red lips"),
    ],
)
def test_an_untaught_colour_is_read_as_the_captions_word_for_it(edit, mask, read):
    text, note = read_in_captions(edit, mask)
    assert text == read and note.startswith(f"Read '{edit}' as '{read}'") and "\n" not in note


def test_the_captions_own_words_and_other_parts_pass_unchanged():
    for attribute in ("eye_colour", "hair_colour", "lips", "hair_length", "mouth", "nose"):
        for phrases in PHRASES[attribute].values():
            for phrase in phrases:
                mask = {"eye_colour": "eyes", "lips": "lips", "mouth": "mouth", "nose": "nose"}.get(attribute, "hair")
                assert read_in_captions(phrase, mask) == (phrase, None), phrase
    assert read_in_captions("crimson nose", "nose") == ("crimson nose", None), "no caption colours there: as typed"
    assert read_in_captions("a big nose", "eyes") == ("a big nose", None)
    assert {"hazel", "amber"} <= TAUGHT_WORDS["eyes"] and {"blond", "gray"} <= TAUGHT_WORDS["hair"]


def test_a_colour_the_part_was_never_captioned_with_is_kept_with_a_sentence():
    text, note = read_in_captions("violet eyes", "eyes")
    assert text == "violet eyes" and "not taught violet for the eyes" in note and "hazel" in note
    text, note = read_in_captions("pink lips", "lips")
    assert text == "pink lips" and "not taught pink for the lips" in note


def test_every_colour_word_has_a_basic_term_of_the_eleven():
    assert set(BASIC_TERM.values()) == {"black", "white", "red", "green", "yellow", "blue", "brown", "purple", "pink", "orange", "grey"}


def test_part_nouns_the_captions_never_use_are_read_as_the_parts_word():
    """ "could you dye her locks a deep burgundy" parses to "deep burgundy locks": the head CLIP
    knew neither word and saw almost no move (-0.03)."""
    assert read_in_captions("deep burgundy locks", "hair")[0] == "deep red hair"
    assert read_in_captions("blue pupils", "eyes")[0] == "blue eyes"
    assert read_in_captions("thick brows", "the brows")[0] == "thick eyebrows"
    text, note = read_in_captions("pointed jawline", "jaw")
    assert text == "pointed jaw" and "'jawline' as 'jaw'" in note
    assert read_in_captions("a big smile", "mouth") == ("a big smile", None), "an expression is not the mouth itself"
    assert read_in_captions("a pointed chin", "chin") == ("a pointed chin", None), "a caption's own noun stays"
