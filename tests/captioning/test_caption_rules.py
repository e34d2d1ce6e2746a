"""Caption rules: the trigger phrase, banned words, cleaning model output, combining frames."""

from __future__ import annotations

import pytest

from wan_lora_dagster.captioning.rules import (
    apply_trigger,
    clean_generated,
    find_banned_words,
    most_agreed_caption,
)


@pytest.mark.parametrize(
    ("text", "trigger", "expected"),
    [
        ("a man walks", "ghibli style", "ghibli style, a man walks"),
        ("  a man \n walks  ", "ghibli  style", "ghibli style, a man walks"),
        ("Ghibli Style, a man walks", "ghibli style", "Ghibli Style, a man walks"),
        ("a man walks in ghibli style", "ghibli style", "a man walks in ghibli style"),
        ("a man walks", "", "a man walks"),
        ("a man walks", "   ", "a man walks"),
        ("", "ghibli style", "ghibli style"),
    ],
)
def test_trigger_is_prepended_once(text, trigger, expected):
    assert apply_trigger(text, trigger) == expected


def test_trigger_inside_a_longer_word_does_not_count():
    """ "sks" in "asks" is not the trigger: the caption still gets it."""
    assert apply_trigger("a man asks", "sks") == "sks, a man asks"


def test_applying_the_trigger_twice_changes_nothing():
    once = apply_trigger("a man walks", "ghibli style")
    assert apply_trigger(once, "ghibli style") == once


def test_banned_words_match_whole_words_case_insensitively():
    assert find_banned_words("a bunny hops", ["Bunny"]) == ["Bunny"]
    assert find_banned_words("a BUNNY hops", ["bunny"]) == ["bunny"]
    assert find_banned_words("a bunnyhop", ["bunny"]) == []
    assert find_banned_words("two bunnies", ["bunny"]) == []


def test_a_hyphen_separates_words():
    """A user banning "bunny" wants "bunny-eared" flagged too."""
    assert find_banned_words("a bunny-eared girl", ["bunny"]) == ["bunny"]


def test_banned_phrases_and_order():
    text = "Slow  motion shot of a watermark, blurry."
    banned = ["blurry", "watermark", "slow motion", "text", "", "Blurry"]
    assert find_banned_words(text, banned) == ["blurry", "watermark", "slow motion", "Blurry"]


def test_banned_words_with_punctuation_are_matched_literally():
    assert find_banned_words("a 4k+ render", ["4k+"]) == ["4k+"]
    assert find_banned_words("a 4kx render", ["4k+"]) == []


@pytest.mark.parametrize(
    ("raw", "prompt", "expected"),
    [
        ("a man walks .", "", "a man walks."),
        ("<|im_start|>a man walks<|im_end|><|endoftext|>", "", "a man walks"),
        ("</s><pad> a man  walks <unk>", "", "a man walks"),
        ("Describe this clip. a man walks", "Describe this clip.", "a man walks"),
        ("Question: what? Answer: a man walks", "Question: what? Answer:", "a man walks"),
        ("Answer: a man walks", "", "a man walks"),
        ("assistant: a dog runs , then stops", "", "a dog runs, then stops"),
        ("answering machine on a table", "", "answering machine on a table"),
    ],
)
def test_clean_generated(raw, prompt, expected):
    assert clean_generated(raw, prompt) == expected


def test_frame_captions_agreed_by_most_frames_win():
    captions = ["a man walks down a street", "a white flash", "a man walks along a street"]
    assert most_agreed_caption(captions) in {captions[0], captions[2]}


def test_without_agreement_the_middle_frame_wins():
    assert most_agreed_caption(["red sky", "a dog", "blue sea"]) == "a dog"
    assert most_agreed_caption(["", "a dog", ""]) == "a dog"
    assert most_agreed_caption(["", " "]) == ""
