"""The caption files: the captioner writes them, a hand edit is never overwritten or deleted."""

from __future__ import annotations

import json

import pytest

from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.errors import ConfigError

CLIP = "film_00m05s-00m10s"


@pytest.fixture
def store(tmp_path) -> CaptionStore:
    return CaptionStore(tmp_path / "captions", tmp_path / "out" / "records" / "captioner")


def caption_file(store: CaptionStore, clip_id: str = CLIP):
    return store.captions_dir / f"{clip_id}.txt"


def test_a_missing_caption_is_written_by_the_captioner(store):
    assert store.state(CLIP).origin == "missing"
    assert store.state(CLIP).text is None

    state = store.write_auto(CLIP, "  a man walks \n", "settings-1")

    assert (state.origin, state.text, state.path) == ("auto", "a man walks", caption_file(store))
    assert caption_file(store).read_text(encoding="utf-8") == "a man walks\n"
    assert store.state(CLIP) == state
    assert store.last_auto(CLIP) == ("a man walks", "settings-1")
    assert not list(store.captions_dir.glob(".*")), "no temporary file is left behind"


def test_a_rerun_with_other_settings_overwrites_an_auto_caption(store):
    store.write_auto(CLIP, "a man walks", "settings-1")

    state = store.write_auto(CLIP, "a woman runs", "settings-2")

    assert (state.origin, state.text) == ("auto", "a woman runs")
    assert caption_file(store).read_text(encoding="utf-8") == "a woman runs\n"
    assert store.last_auto(CLIP) == ("a woman runs", "settings-2")


def test_a_hand_edit_survives_a_rerun_and_a_captioner_change(store):
    store.write_auto(CLIP, "a man walks", "blip2-settings")
    caption_file(store).write_text("a samurai walks through rain", encoding="utf-8")

    rerun = store.write_auto(CLIP, "a man walks", "blip2-settings")
    changed = store.write_auto(CLIP, "a person in the rain", "vlm-settings")

    for state in (rerun, changed, store.state(CLIP)):
        assert (state.origin, state.text) == ("edited", "a samurai walks through rain")
    assert caption_file(store).read_text(encoding="utf-8") == "a samurai walks through rain"
    assert store.last_auto(CLIP) == ("a man walks", "blip2-settings")


def test_an_edit_back_to_the_captioners_text_makes_it_auto_again(store):
    store.write_auto(CLIP, "a man walks", "settings-1")
    caption_file(store).write_text("a samurai walks", encoding="utf-8")
    caption_file(store).write_text("a man walks", encoding="utf-8")

    assert store.state(CLIP).origin == "auto"


@pytest.mark.parametrize(
    "saved", ["a man walks", "a man walks\n\n", "a man walks  \r\n", "\ufeffa man walks\n"]
)
def test_whitespace_at_the_ends_or_a_byte_order_mark_is_not_an_edit(store, saved):
    store.write_auto(CLIP, "a man walks", "settings-1")
    caption_file(store).write_text(saved, encoding="utf-8")

    assert store.state(CLIP).origin == "auto"
    assert store.write_auto(CLIP, "a dog runs", "settings-2").text == "a dog runs"


def test_a_hand_written_caption_without_a_record_is_kept(store):
    caption_file(store).parent.mkdir(parents=True)
    caption_file(store).write_text("my own caption\n", encoding="utf-8")

    state = store.write_auto(CLIP, "a man walks", "settings-1")

    assert (state.origin, state.text) == ("edited", "my own caption")
    assert caption_file(store).read_text(encoding="utf-8") == "my own caption\n"
    assert store.last_auto(CLIP) is None


def test_an_unreadable_record_keeps_the_caption(store):
    store.write_auto(CLIP, "a man walks", "settings-1")
    (store.records_dir / f"{CLIP}.json").write_text("{not json", encoding="utf-8")

    assert store.write_auto(CLIP, "a dog runs", "settings-2").origin == "edited"
    assert caption_file(store).read_text(encoding="utf-8") == "a man walks\n"


def test_a_write_interrupted_before_the_file_changed_is_still_the_captioners(store):
    """The record names the old text while the file is replaced: a crash then leaves no false
    hand edit, and the next run rewrites the caption."""
    store.write_auto(CLIP, "a man walks", "settings-1")
    record = {
        "text": "a dog runs",
        "settings_fingerprint": "settings-2",
        "replacing": "a man walks",
    }
    (store.records_dir / f"{CLIP}.json").write_text(json.dumps(record), encoding="utf-8")

    assert store.state(CLIP).origin == "auto"
    assert store.write_auto(CLIP, "a dog runs", "settings-2").text == "a dog runs"
    record = json.loads((store.records_dir / f"{CLIP}.json").read_text(encoding="utf-8"))
    assert record.get("replacing") is None, "once written, only the new text counts"


def test_a_caption_that_is_not_utf8_is_named_in_the_error(store):
    caption_file(store).parent.mkdir(parents=True)
    caption_file(store).write_bytes("caf\xe9".encode("latin-1"))

    with pytest.raises(ConfigError, match=f"{CLIP}.txt.*UTF-8"):
        store.state(CLIP)


def test_orphan_moves_and_never_deletes(store):
    store.write_auto(CLIP, "first caption", "settings-1")
    first = store.orphan(CLIP)
    store.write_auto(CLIP, "second caption", "settings-1")
    second = store.orphan(CLIP)

    orphans = store.captions_dir / "_orphaned"
    assert first == orphans / f"{CLIP}.txt"
    assert second == orphans / f"{CLIP}.1.txt"
    assert first.read_text(encoding="utf-8") == "first caption\n"
    assert second.read_text(encoding="utf-8") == "second caption\n"
    assert store.state(CLIP).origin == "missing"
    assert store.orphan(CLIP) is None


@pytest.mark.parametrize("clip_id", ["", "../escape", "a/b", ".hidden"])
def test_clip_ids_that_are_not_file_names_are_refused(store, clip_id):
    with pytest.raises(ValueError, match="clip id"):
        store.state(clip_id)
