"""Every clip's and still's caption as the captions page shows it, and the page's writes.

A save is the hand edit an editor makes (`captions/<id>.txt`, stripped text and a newline,
written atomically), so the graph takes it as an edit and never overwrites it. Every write names
the text the page last saw (a hash), compared with the file as it is read at that moment: if an
editor changed the file meanwhile the write is refused and the file's text returned, so no edit
is ever lost.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import clip_path
from wan_lora_dagster.pipeline.items import STILLS
from wan_lora_dagster.project import Project
from wan_lora_dagster.studio.caption_cards import Card, CardReader, text_hash
from wan_lora_dagster.studio.paths import file_in

# the filters of the page's state menu
STATES = ("auto", "edited", "unsynced", "missing", "banned", "no_trigger")
# cards read at a time in the background, then a pause: a page's request waits one chunk at most
WARM_UP_CHUNK, WARM_UP_PAUSE_SECONDS = 50, 0.02


class Conflict(UserError):
    """The file changed since the page read it; `card` holds what it holds now."""

    def __init__(self, card: Card):
        super().__init__(f"{card.id}: the caption file changed since the page read it")
        self.card = card


@dataclass(frozen=True)
class Change:
    """What a find-and-replace would do to one caption."""

    id: str
    before: str
    after: str
    hash: str


class CaptionIndex:
    """The project's items and their captions: the items listed once (a ranges edit or an update
    lists them again: `reload`), each caption read when a page shows it and again when its file
    changed (caption_cards.py)."""

    def __init__(self, project: Project):
        self.project = project
        # one lock: requests during the first listing wait for it, and for one warm-up chunk
        self._lock = threading.RLock()
        self._reader: CardReader | None = None
        self._warming = False

    def reload(self) -> None:
        with self._lock:
            self._reader = CardReader(self.project)
        if self._warming:
            self.warm_up()

    def warm_up(self) -> None:
        """List the items now, then read every card in the background, a chunk at a time: the
        state and text filters need them all (30,000 captions take seconds), the first page
        only its own."""
        self._warming = True
        threading.Thread(target=self._warm, name="studio-index", daemon=True).start()

    def _warm(self) -> None:
        reader = self._loaded()
        ids = reader.ids
        for start in range(0, len(ids), WARM_UP_CHUNK):
            time.sleep(WARM_UP_PAUSE_SECONDS)  # a request waiting for the listing goes first
            with self._lock:
                if self._reader is not reader:  # listed again: that listing warms itself
                    return
                reader.cards(ids[start : start + WARM_UP_CHUNK])

    def _loaded(self) -> CardReader:
        with self._lock:
            if self._reader is None:
                self._reader = CardReader(self.project)
            return self._reader

    @property
    def catalog(self) -> Catalog:
        return self._loaded().catalog

    def page(
        self, offset: int, size: int, state="", film="", section="", text=""
    ) -> tuple[int, list[Card]]:
        """(how many items match, the cards of `size` of them from `offset`): film and section
        are the listing's; only the state and text filters read every caption."""
        with self._lock:
            reader = self._loaded()
            ids = [
                item_id
                for item_id in reader.ids
                if (not film or reader.film(item_id) == film)
                and (not section or section in reader.sections(reader.kinds[item_id]))
            ]
            if not state and not text:
                return len(ids), reader.cards(ids[offset : offset + size])
            cards = [card for card in reader.cards(ids) if card.matches(state, text)]
            return len(cards), cards[offset : offset + size]

    def cards(self) -> list[Card]:
        """Every card (reads every caption not read yet)."""
        with self._lock:
            reader = self._loaded()
            return reader.cards(reader.ids)

    def card(self, item_id: str) -> Card:
        with self._lock:
            reader = self._loaded()
            if item_id not in reader.kinds:
                raise UserError(f"no clip or still {item_id!r} in this project")
            return reader.cards([item_id])[0]

    def media(self, item_id: str) -> Path:
        """The file the item is trained from: its 16 fps clip, or the still."""
        reader = self._loaded()
        if item_id not in reader.kinds:
            raise UserError(f"no clip or still {item_id!r} in this project")
        if reader.kinds[item_id] is STILLS:
            return reader.catalog.still_paths[item_id]
        return clip_path(self.project, item_id)

    def films(self) -> list[str]:
        reader = self._loaded()
        return sorted({clip_range.film_stem for clip_range in reader.catalog.ranges}) + (
            ["stills"] if reader.catalog.still_ids else []
        )

    def sections(self) -> list[str]:
        return [section.name for section in self.catalog.project.recipe.datasets]

    def save(self, item_id: str, text: str, seen_hash: str) -> Card:
        """Write `text` as a hand edit, unless the file no longer holds what the page saw."""
        text = text.strip()
        if not text:
            raise UserError(f"{item_id}: a caption cannot be empty")
        with self._lock:
            path = self._current(item_id, seen_hash)
            write_text_atomic(path, text + "\n")
            return self.card(item_id)

    def preview_replace(
        self, find: str, replace: str, ids: list[str] | None = None
    ) -> list[Change]:
        """Every caption that replacing `find` (case-sensitive, as typed) would change."""
        if not find:
            raise UserError("find what? the text to find is empty")
        cards = self.cards() if ids is None else [self.card(item_id) for item_id in ids]
        return [
            Change(card.id, card.text, card.text.replace(find, replace).strip(), card.hash)
            for card in cards
            if find in card.text and card.text.replace(find, replace).strip()
        ]

    def apply_replace(
        self, find: str, replace: str, seen: dict[str, str]
    ) -> tuple[list[Card], list[Card]]:
        """Write the replacement into the captions of a preview, given as id -> the hash each had
        then; (written, conflicts): a caption changed since is left alone, returned as it is."""
        written, conflicts = [], []
        for item_id, seen_hash in seen.items():
            card = self.card(item_id)
            if card.hash != seen_hash:
                conflicts.append(card)
                continue
            for change in self.preview_replace(find, replace, [item_id]):
                try:  # the file itself may have changed, unseen by the cards read
                    written.append(self.save(item_id, change.after, seen_hash))
                except Conflict as conflict:
                    conflicts.append(conflict.card)
        return written, conflicts

    def _current(self, item_id: str, seen_hash: str) -> Path:
        """The caption's file, if it holds what the page saw: read from the file now, never
        from a card read before (an edit within the same clock tick keeps the file's stat)."""
        reader = self._loaded()
        if item_id not in reader.kinds:
            raise UserError(f"no clip or still {item_id!r} in this project")
        store = reader.store(item_id)
        path = file_in(store.captions_dir, item_id, ".txt")
        if text_hash(store.state(item_id).text) != seen_hash:
            reader.forget(item_id)
            raise Conflict(reader.cards([item_id])[0])
        return path


def hash_of(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""
