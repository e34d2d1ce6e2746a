"""Every clip's and still's caption as the captions page shows it, and the page's writes.

A save is the hand edit an editor makes (`captions/<id>.txt`, stripped text and a newline,
written atomically), so the graph takes it as an edit and never overwrites it. Every write names
the file's content the page last saw (a hash): if an editor changed the file meanwhile the write
is refused and the file's text returned, so no edit is ever lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.captioning.rules import contains_phrase, find_banned_words
from wan_lora_dagster.captioning.store import CaptionState, CaptionStore
from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.catalog import Catalog, load_catalog
from wan_lora_dagster.pipeline.dataset import caption_store, clip_path
from wan_lora_dagster.pipeline.items import CLIPS, STILLS, ItemKind
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.pipeline.stills import still_caption_store
from wan_lora_dagster.project import Project
from wan_lora_dagster.studio.paths import file_in

# the filters of the page's state menu
STATES = ("auto", "edited", "unsynced", "missing", "banned", "no_trigger")


class Conflict(UserError):
    """The file changed since the page read it; `card` holds what it holds now."""

    def __init__(self, card: Card):
        super().__init__(f"{card.id}: the caption file changed since the page read it")
        self.card = card


@dataclass(frozen=True)
class Card:
    """One item as the page shows it."""

    id: str
    kind: str  # "clip" or "still"
    film: str  # the film a clip was cut from; "stills" for a still
    span: str  # where in the film (empty for a still)
    batch: str  # its Dagster partition: a batch of consecutive items
    sections: tuple[str, ...]  # the [[datasets]] sections that train on it
    text: str  # the caption file's text, stripped ("" without a file)
    hash: str  # of the file's bytes ("" without a file): what a write must still find
    origin: str  # auto, edited or missing (captioning/store.py)
    sync: str  # fresh, unsynced or missing (the graph's captions partition)
    banned: tuple[str, ...]
    trigger_missing: bool

    def states(self) -> set[str]:
        flags = {"unsynced": self.sync == "unsynced", "banned": bool(self.banned)}
        flags["no_trigger"] = self.trigger_missing
        return {self.origin} | {state for state, on in flags.items() if on}

    def matches(self, state: str, film: str, section: str, text: str) -> bool:
        return (
            (not state or state in self.states())
            and (not film or self.film == film)
            and (not section or section in self.sections)
            and (not text or text.casefold() in f"{self.id} {self.text}".casefold())
        )


@dataclass(frozen=True)
class Change:
    """What a find-and-replace would do to one caption."""

    id: str
    before: str
    after: str
    hash: str


class CaptionIndex:
    """The project's items and their captions' states, read once and kept current by the
    page's own writes; `reload` reads them again (after an update, or a film added)."""

    def __init__(self, project: Project):
        self.project = project
        # one lock: requests during the first read wait for it; a save may first load the index
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._cards: dict[str, Card] = {}

    def reload(self) -> None:
        catalog = load_catalog(self.project)
        expectations = Expectations(catalog)
        cards = {}
        for kind in (CLIPS, STILLS):
            store = self._store(kind)
            for state in catalog.caption_states(store, kind.ids(catalog)).values():
                cards[state.clip_id] = self._card(catalog, expectations, kind, state)
        with self._lock:
            self._catalog, self._cards = catalog, cards

    @property
    def catalog(self) -> Catalog:
        self._loaded()
        return self._catalog

    def warm_up(self) -> None:
        """Read everything now, in a thread: 30,000 captions take seconds, which the first
        page would otherwise wait for."""
        threading.Thread(target=self._loaded, name="studio-index", daemon=True).start()

    def _loaded(self) -> dict[str, Card]:
        with self._lock:
            if self._catalog is None:
                self.reload()
        return self._cards

    def cards(self, state="", film="", section="", text="") -> list[Card]:
        with self._lock:
            return [
                card for card in self._loaded().values() if card.matches(state, film, section, text)
            ]

    def card(self, item_id: str) -> Card:
        try:
            return self._loaded()[item_id]
        except KeyError:
            raise UserError(f"no clip or still {item_id!r} in this project") from None

    def media(self, item_id: str) -> Path:
        """The file the item is trained from: its 16 fps clip, or the still."""
        card = self.card(item_id)
        if card.kind == "still":
            return self.catalog.still_paths[item_id]
        return clip_path(self.project, item_id)

    def films(self) -> list[str]:
        return sorted({card.film for card in self.cards()})

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
            return self._refresh(item_id)

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
                try:  # the file itself may have changed, unseen by the index
                    written.append(self.save(item_id, change.after, seen_hash))
                except Conflict as conflict:
                    conflicts.append(conflict.card)
        return written, conflicts

    def _current(self, item_id: str, seen_hash: str) -> Path:
        card = self.card(item_id)
        path = file_in(self._store(_kind(card)).captions_dir, item_id, ".txt")
        if hash_of(path) != seen_hash:
            raise Conflict(self._refresh(item_id))
        return path

    def _refresh(self, item_id: str) -> Card:
        """Read one item's caption again; its sync state from a fresh look at its records."""
        card = self._cards[item_id]
        # the catalog keeps the caption states it read: a copy without them reads them again
        catalog = dataclasses.replace(self.catalog, _caption_states={})
        kind = _kind(card)
        state = self._store(kind).state(item_id)
        self._cards[item_id] = self._card(catalog, Expectations(catalog), kind, state)
        return self._cards[item_id]

    def _card(
        self, catalog: Catalog, expectations: Expectations, kind: ItemKind, state: CaptionState
    ) -> Card:
        rules, item_id, text = catalog.project.recipe.captions, state.clip_id, state.text or ""
        clip_range = catalog.ranges_by_clip.get(item_id)
        return Card(
            id=item_id,
            kind=kind.name,
            film=clip_range.film_stem if clip_range else "stills",
            span=clip_range.span if clip_range else "",
            batch=(catalog.clip_batches if kind is CLIPS else catalog.still_batches).batch_of[
                item_id
            ],
            sections=tuple(
                section.name for section in catalog.project.recipe.sections_for(kind.source)
            ),
            text=text,
            hash=hash_of(state.path) if state.text is not None else "",
            origin=state.origin,
            sync=expectations.state(kind.captions, item_id),
            banned=tuple(find_banned_words(text, rules.banned_words)),
            trigger_missing=bool(rules.trigger.strip())
            and not contains_phrase(text, rules.trigger),
        )

    def _store(self, kind: ItemKind) -> CaptionStore:
        return caption_store(self.project) if kind is CLIPS else still_caption_store(self.project)


def _kind(card: Card) -> ItemKind:
    return STILLS if card.kind == "still" else CLIPS


def hash_of(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""
