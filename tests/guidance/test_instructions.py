"""Instruction sentences become (edit, mask) pairs locally; a sentence that names no part gets one sentence back."""

import pytest

from bridge.errors import BridgeError
from bridge.guidance.instructions import PARTS, changes_shape, parse_instruction


@pytest.mark.parametrize(
    ("sentence", "edit", "mask", "part"),
    [
        ("make the eyes green", "green eyes", "eyes", "eyes"),
        ("Give her pink hair!", "pink hair", "hair", "hair"),
        ("open the mouth wide", "wide open mouth", "mouth", "mouth"),
        ("could you turn his irises amber, please", "amber irises", "irises", "eyes"),
        ("change the colour of the hair to blonde", "blonde hair", "hair", "hair"),
        ("paint the lips bright red", "bright red lips", "lips", "mouth"),
        ("shorten her hair", "short hair", "hair", "hair"),
        ("close the mouth", "closed mouth", "mouth", "mouth"),
        ("the nostrils should be bigger", "bigger nostrils", "nose", "nose"),
        ("give the woman violet eyes", "violet eyes", "eyes", "eyes"),
        ("make the man's hair silver", "silver hair", "hair", "hair"),
        ("I'd like the character\u2019s lips to be pink", "pink lips", "lips", "mouth"),
        ("change the eye colour to hazel", "hazel eyes", "eyes", "eyes"),
        ("make her smile", "smiling mouth", "mouth", "mouth"),
        ("give him a big grin", "big grinning mouth", "mouth", "mouth"),
        ("straighten the hair", "straight hair", "hair", "hair"),
        ("make him bald", "bald hair", "hair", "hair"),
        ("red lipstick", "lipstick red lips", "lips", "mouth"),
        ("give the old man a beard", "beard jaw", "jaw", "jaw"),
        ("make the young woman's hair blonde", "blonde hair", "hair", "hair"),
        ("give the bearded man blue eyes", "blue eyes", "eyes", "eyes"),
        ("give her a bald head", "bald hair", "hair", "hair"),
        ("remove the beard", "clean-shaven jaw", "jaw", "jaw"),
        ("take the lipstick off", "natural lips", "lips", "mouth"),
        ("get rid of her freckles", "clear skin", "skin", "skin"),
        ("make the eyes #2e8b57", "green eyes", "eyes", "eyes"),
        ("dye the hair #F0F", "magenta hair", "hair", "hair"),
        ("make the eyes #ff0000ff", "red eyes", "eyes", "eyes"),
        ("give the man a strip of white hair", "strip white hair", "hair", "hair"),
        ("cut the hair off", "bald hair", "hair", "hair"),
        ("change the hair colour from brown to black", "black hair", "hair", "hair"),
        ("swap the eye colour to hazel", "hazel eyes", "eyes", "eyes"),
        ("raise the eyebrows", "raised eyebrows", "eyebrows", "eyebrows"),
        ("make the hair redder than it is", "redder hair", "hair", "hair"),
        ("give her rosy cheeks", "rosy cheeks", "skin", "skin"),
        ("give him a tan", "tan skin", "skin", "skin"),
        ("remove the moustache", "clean-shaven mouth", "mouth", "mouth"),
        ("make the mouth smile", "smiling mouth", "mouth", "mouth"),
        ("make the brown eyes blue", "blue eyes", "eyes", "eyes"),
        ("the eyes are too blue, make them green", "green eyes", "eyes", "eyes"),
        ("the hair is too long, make it short", "short hair", "hair", "hair"),
        ("make the hair too red", "red hair", "hair", "hair"),
        ("I'd prefer her eyes to be more of a hazel colour", "hazel eyes", "eyes", "eyes"),
        ("replace the blue eyes with green ones", "green eyes", "eyes", "eyes"),
        ("make the eyes green instead of blue", "green eyes", "eyes", "eyes"),
        ("change the hair to red from brown", "red hair", "hair", "hair"),
        ("give him no beard", "clean-shaven jaw", "jaw", "jaw"),
        ("hey, make the hair red ok thanks bye", "red hair", "hair", "hair"),
        ("make the hair ros\u00e9", "ros\u00e9 hair", "hair", "hair"),
        ("make the eyes gr\u200been", "green eyes", "eyes", "eyes"),
        ("make the \uff48\uff41\uff49\uff52 red", "red hair", "hair", "hair"),
    ],
)
def test_sentences_read_as_their_pair(sentence, edit, mask, part):
    parsed = parse_instruction(sentence)
    assert (parsed.edit, parsed.mask, parsed.part, parsed.found_by) == (edit, mask, part, "grammar")


def test_every_part_word_names_its_part():
    for part, words in PARTS.items():
        for word in words:
            assert parse_instruction(f"make the {word} blue").part == part


@pytest.fixture(scope="module")
def bundled_clip():
    from bridge.guidance.clip import load_clip

    return load_clip("bundled")


@pytest.mark.parametrize(
    "sentence",
    [
        "",
        "   ",
        "make it nicer",
        "blue sky",
        "x" * 10_000,
        "make the eyes",
        "make the eyes green and the hair blue",
        "give the woman",
        "don't change the eyes",
        "make the hair not red",
    ],
)
def test_sentences_without_a_part_or_a_change_get_one_sentence(sentence, bundled_clip):
    with pytest.raises(BridgeError) as error:
        parse_instruction(sentence, bundled_clip)
    message = str(error.value)
    assert "\n" not in message and len(message) < 250 and message.endswith(".")


def test_an_unlisted_noun_is_looked_up_with_clip_or_refused(tiny_clip):
    """The CLIP fallback either names one of the parts or refuses in one sentence, for any CLIP
    (here a random tiny one, whose text similarities mean nothing)."""
    for sentence in ("make the tresses red", "turn the peepers blue", "make the temples pink"):
        try:
            parsed = parse_instruction(sentence, tiny_clip)
        except BridgeError as error:
            assert "names no part" in str(error)
        else:
            assert parsed.part in PARTS and parsed.found_by == "clip" and parsed.mask in sentence


@pytest.mark.parametrize(
    "edit, shape",
    [
        ("red hair", False),
        ("bright green irises", False),
        ("dark skin", True),
        ("dark red hair", False),
        ("Ginger hair", False),
        ("the auburn locks", False),
        ("long red hair", True),
        ("curly pink hair", True),
        ("open mouth", True),
        ("a big nose", True),
        ("closed lips", True),
        ("smaller ears", True),
        ("like the reference picture", True),
    ],
)
def test_only_prompts_of_colours_keep_the_shape(edit, shape):
    assert changes_shape(edit) is shape


@pytest.mark.parametrize(
    "sentence",
    [
        "remove the ears",
        "make the eyebrows disappear",
        "remove the grey hair",
        "get rid of the grey in his hair",
        "remove the beard and make the eyes blue",
    ],
)
def test_taking_a_part_or_only_some_of_it_away_is_refused_with_what_to_say_instead(sentence):
    """A part cannot go, and "remove the grey hair" is not "bald hair" (what the removal of all of
    it would leave)."""
    with pytest.raises(BridgeError, match="takes something away.*e.g. 'make the"):
        parse_instruction(sentence)


@pytest.mark.parametrize("sentence", ["make the eyes less blue", "undo the red hair"])
def test_less_and_undo_are_refused_like_a_negation(sentence):
    """CLIP reads "less blue" as blue, and "undo the red hair" would edit toward red."""
    with pytest.raises(BridgeError, match="says what not to do"):
        parse_instruction(sentence)


def test_a_negation_is_refused_rather_than_edited_toward():
    """CLIP reads "not red hair" as red hair: the user is told, nothing is edited toward red."""
    with pytest.raises(BridgeError, match="not to do"):
        parse_instruction("the hair should not be red")


def test_a_prompt_of_control_characters_only_is_empty():
    from bridge.lenerf.open_model import check_prompt

    with pytest.raises(BridgeError, match="prompt is empty"):
        check_prompt("\u0000\u0001\u0007", "edit")
    assert check_prompt("green\u0000 eyes", "edit") == "green eyes"
