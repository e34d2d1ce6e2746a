"""The captions page's cards, each read when first shown and read again only once its files
changed: a page shows 60 of 30,000 items, so its first screen reads 60 captions, not 30,000.

What a card shows comes from two files of the item: its caption (text, and with the captioner's
record, auto or edited) and its `captions` record (the graph's sync state). Their stat (size,
mtime, inode) keys the card, so an edit made in an editor shows at the next look.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

from wan_lora_dagster.captioning.rules import contains_phrase, find_banned_words
from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.dataset import caption_store
from wan_lora_dagster.pipeline.items import CLIPS, STILLS, ItemKind
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.pipeline.stills import still_caption_store
from wan_lora_dagster.project import Project


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
    hash: str  # of that text ("" without a file): what a write must still find
    origin: str  # auto, edited or missing (captioning/store.py)
    sync: str  # fresh, unsynced or missing (the graph's captions partition)
    banned: tuple[str, ...]
    trigger_missing: bool

    def states(self) -> set[str]:
        flags = {"unsynced": self.sync == "unsynced", "banned": bool(self.banned)}
        flags["no_trigger"] = self.trigger_missing
        return {self.origin} | {state for state, on in flags.items() if on}

    def matches(self, state: str, text: str) -> bool:
        """The filters only its caption tells (film and section are the item's: CardReader)."""
        return (not state or state in self.states()) and (
            not text or text.casefold() in f"{self.id} {self.text}".casefold()
        )


class CardReader:
    """The project's items as one read of its folder found them, and their cards."""

    def __init__(self, project: Project):
        self.catalog = dataclasses.replace(load_catalog(project), lazy_captions=True)
        self.kinds = dict.fromkeys(self.catalog.clip_ids, CLIPS)
        self.kinds.update(dict.fromkeys(self.catalog.still_ids, STILLS))
        self.stores = {CLIPS: caption_store(project), STILLS: still_caption_store(project)}
        self._records = str(self.catalog.records.root)
        # the catalog's own mappings, which the graph's sync rules read too: one read of a caption
        self._states = {
            kind: self.catalog.caption_states(self.stores[kind], kind.ids(self.catalog))
            for kind in (CLIPS, STILLS)
        }
        self._cards: dict[str, tuple[tuple, Card]] = {}  # id -> (its files' stat, card)

    @property
    def ids(self) -> list[str]:
        """Every item, in the project's order: its clips, then its stills."""
        return list(self.kinds)

    def film(self, item_id: str) -> str:
        clip_range = self.catalog.ranges_by_clip.get(item_id)
        return clip_range.film_stem if clip_range else "stills"

    def sections(self, kind: ItemKind) -> tuple[str, ...]:
        return tuple(
            section.name for section in self.catalog.project.recipe.sections_for(kind.source)
        )

    def cards(self, item_ids: list[str]) -> list[Card]:
        """The items' cards, reading those whose files changed since they were last read."""
        stamps = {item_id: self._stamp(item_id) for item_id in item_ids}
        changed = [item_id for item_id in item_ids if self._stamp_read(item_id) != stamps[item_id]]
        if changed:
            # a new snapshot: records and freshness read anew, for the changed cards only
            expectations = Expectations(self.catalog)
            for item_id in changed:
                self._states[self.kinds[item_id]].forget(item_id)
                self._cards[item_id] = (stamps[item_id], self._card(expectations, item_id))
        return [self._cards[item_id][1] for item_id in item_ids]

    def forget(self, item_id: str) -> None:
        """Have the item's card read again at its next ask, whatever its files' stat says."""
        self._cards.pop(item_id, None)

    def caption_path(self, item_id: str) -> str:
        return os.path.join(self.stores[self.kinds[item_id]].captions_dir, f"{item_id}.txt")

    def _stamp_read(self, item_id: str) -> tuple | None:
        read = self._cards.get(item_id)
        return read[0] if read else None

    def _stamp(self, item_id: str) -> tuple:
        """The stat of the item's caption and captions record: an edit or a run changes it."""
        record = f"{self._records}/{self.kinds[item_id].captions}/{item_id}.json"
        return (_stat(self.caption_path(item_id)), _stat(record))

    def _card(self, expectations: Expectations, item_id: str) -> Card:
        kind = self.kinds[item_id]
        state = self._states[kind][item_id]  # the one read of the caption, shared with `sync`
        rules, text = self.catalog.project.recipe.captions, state.text or ""
        clip_range = self.catalog.ranges_by_clip.get(item_id)
        batches = self.catalog.clip_batches if kind is CLIPS else self.catalog.still_batches
        return Card(
            id=item_id,
            kind=kind.name,
            film=self.film(item_id),
            span=clip_range.span if clip_range else "",
            batch=batches.batch_of[item_id],
            sections=self.sections(kind),
            text=text,
            hash=text_hash(state.text),
            origin=state.origin,
            sync=expectations.state(kind.captions, item_id),
            banned=tuple(find_banned_words(text, rules.banned_words)),
            trigger_missing=bool(rules.trigger.strip())
            and not contains_phrase(text, rules.trigger),
        )

    def store(self, item_id: str) -> CaptionStore:
        return self.stores[self.kinds[item_id]]


def text_hash(text: str | None) -> str:
    """What the page saw of a caption ("" for no file): a write must find the same."""
    return "" if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stat(path: str) -> tuple | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino)
