"""Caption rules: the trigger phrase, banned words, and cleaning a captioner's raw output."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Special tokens that a decoder may leave in its text: <|im_end|>-style chat tokens and the
# <s>, </s>, <pad>, <unk>, <image> tokens of OPT/BLIP-2-style tokenizers.
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>|</?(?:s|pad|unk|image)>", re.IGNORECASE)
# What a model answering a chat or a "Question: ... Answer:" prompt may put before its answer.
_ANSWER_LABEL = re.compile(r"^(?:(?:assistant|answer|caption)\s*:\s*)+", re.IGNORECASE)
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?])")


def normalize_whitespace(text: str) -> str:
    """One space between words, none at the ends."""
    return " ".join(text.split())


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Matches `phrase` as whole words, case-insensitively, with any whitespace between its words.

    Word edges are "not a letter, digit or underscore", so "bunny" is found in "a bunny hops" and in
    "bunny-eared" (a hyphen separates words) but not in "bunnyhop" or "bunnies".
    """
    words = (re.escape(word) for word in phrase.split())
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether `phrase` occurs in `text` as whole words, case-insensitively (never if empty)."""
    return bool(phrase.strip()) and _phrase_pattern(phrase).search(text) is not None


def apply_trigger(text: str, trigger: str) -> str:
    """`text` with "<trigger>, " in front, unless it already contains the trigger phrase.

    Whitespace is normalised in both; an empty trigger leaves the (normalised) text as it is, and an
    empty text becomes the trigger alone.
    """
    text, trigger = normalize_whitespace(text), normalize_whitespace(trigger)
    if not trigger or contains_phrase(text, trigger):
        return text
    return f"{trigger}, {text}" if text else trigger


def find_banned_words(text: str, banned_words: Sequence[str]) -> list[str]:
    """The entries of `banned_words` that occur in `text` as whole words or phrases.

    Case-insensitive; returned as spelled in `banned_words`, in that order, each once.
    """
    found = [word for word in banned_words if contains_phrase(text, word)]
    return list(dict.fromkeys(found))


def clean_generated(text: str, prompt: str = "") -> str:
    """A captioner's decoded output as a caption.

    Removes special tokens, an echo of `prompt` and a leading "assistant:" or "Answer:" label;
    leaves single spaces and none before punctuation (word-level tokenizers decode "walks." as
    "walks .").
    """
    text = normalize_whitespace(_SPECIAL_TOKEN.sub(" ", text))
    prompt = normalize_whitespace(prompt)
    if prompt and text.lower().startswith(prompt.lower()):
        text = text[len(prompt) :].lstrip()
    text = _ANSWER_LABEL.sub("", text)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text).strip()


def most_agreed_caption(captions: Sequence[str]) -> str:
    """The caption that shares the most words with the others (ties: the one nearest the middle).

    Used to turn per-frame captions of one clip into one caption: an odd frame (a flash, a frame
    of the next shot) does not decide it, and the caption stays one sentence. Empty captions are
    ignored; "" if all are empty.
    """
    words = [set(re.findall(r"\w+", caption.lower())) for caption in captions]
    candidates = [index for index, caption in enumerate(captions) if caption.strip()]
    middle = (len(captions) - 1) / 2

    def agreement(index: int) -> float:
        return sum(_jaccard(words[index], words[other]) for other in candidates if other != index)

    if not candidates:
        return ""
    best = min(candidates, key=lambda index: (-agreement(index), abs(index - middle), index))
    return captions[best].strip()


def _jaccard(first: set[str], second: set[str]) -> float:
    return len(first & second) / len(first | second) if first | second else 0.0
