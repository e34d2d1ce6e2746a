"""The captions page reads what it shows: a page of cards reads those captions once each (at
30,000 clips the first screen must not wait for every file), counts the rest from the listing,
and shows a caption edited in an editor at the next look."""

import os

import pytest

from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.captions import CaptionIndex, Conflict

DEMO_CLIPS = 5


def test_a_page_reads_only_its_own_captions_once_and_counts_the_rest(demo, monkeypatch):
    reads = []
    read_state = CaptionStore.state

    def counted(store, item_id):  # a spy: the caption is read as before, and noted
        reads.append(item_id)
        return read_state(store, item_id)

    monkeypatch.setattr(CaptionStore, "state", counted)
    index = CaptionIndex(open_project(demo))
    total, cards = index.page(0, 2)
    assert total == DEMO_CLIPS and len(cards) == 2
    assert all(card.sync == "fresh" for card in cards)  # the graph's state, from the same read
    assert reads == [card.id for card in cards]
    index.page(0, 2)
    assert len(reads) == 2  # unchanged files: not read again


def test_an_editor_edit_shows_at_the_next_look_without_a_reload(demo):
    index = CaptionIndex(open_project(demo))
    assert index.card("drift").origin == "auto"
    (demo / "captions" / "drift.txt").write_text("typed in an editor\n")
    card = index.card("drift")
    assert (card.text, card.origin, card.sync) == ("typed in an editor", "edited", "unsynced")
    assert [card.id for card in index.page(0, 60, state="edited")[1]] == ["drift"]


def test_a_save_checks_the_file_itself_not_the_card_read_before(demo):
    index = CaptionIndex(open_project(demo))
    seen = index.card("drift").hash
    caption = demo / "captions" / "drift.txt"
    stat = caption.stat()
    same_size = caption.read_text().replace("d", "e", 1)
    caption.write_text(same_size)
    os.utime(caption, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as within one clock tick
    with pytest.raises(Conflict):
        index.save("drift", "from the page", seen)
    assert caption.read_text() == same_size
