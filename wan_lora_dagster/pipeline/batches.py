"""Clips (and stills) grouped into batches: the unit Dagster records, and that workers take.

Dagster writes about 40 ms of SQLite events per partition per run (a planned event and a
materialization; measured on 2 idle cores, 3 to 5 times that on busy ones), and a sync writes an
observation per partition and observed source (3 for clips): at 30,000 clips that is hours per
stage and per first sync. So a Dagster partition is a batch of about `TARGET_BATCH_SIZE`
consecutive items, while our records under out/ stay per item and say exactly which item is
fresh (a step skips those cheaply, about a millisecond each). At 250, 30,000 clips are about
150 partitions: a first sync writes about 450 observations, a stage about 300 events.

Boundaries are content-defined, so that adding or removing one range changes one batch and not
every batch after it: a batch starts at an item whose id hashes to 0 modulo the target size (or
at a new film, or when a batch is full). A batch's key is its first item's id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from wan_lora_dagster.fingerprints import fingerprint

TARGET_BATCH_SIZE = 250
MAX_BATCH_SIZE = 4 * TARGET_BATCH_SIZE


@dataclass(frozen=True)
class Batches:
    """Batch key -> its items, in the project's order; and each item's batch."""

    members: dict[str, list[str]]
    batch_of: dict[str, str]

    @property
    def keys(self) -> list[str]:
        return list(self.members)

    def items(self, batch_keys: Iterable[str]) -> list[str]:
        return [item for key in batch_keys for item in self.members.get(key, [])]

    def containing(self, items: Iterable[str]) -> list[str]:
        """The batches holding `items`, in batch order."""
        wanted = {self.batch_of[item] for item in items}
        return [key for key in self.members if key in wanted]

    def versions(self, item_versions: dict[str, str]) -> dict[str, str]:
        """Batch -> one version of its items' versions: any item's change is a batch change."""
        return {
            key: fingerprint([(item, item_versions[item]) for item in members])
            for key, members in self.members.items()
        }


def identity_batches(keys: Iterable[str]) -> Batches:
    """One item per batch (checkpoints: each one is a training run's own unit)."""
    keys = list(keys)
    return Batches(members={key: [key] for key in keys}, batch_of={key: key for key in keys})


def batch_items(item_ids: list[str], groups: list[str] | None = None) -> Batches:
    """Consecutive items in batches; an item of a new group (film) starts a new batch."""
    members: dict[str, list[str]] = {}
    batch_of: dict[str, str] = {}
    current: list[str] = []
    for index, item in enumerate(item_ids):
        new_group = groups is not None and index > 0 and groups[index] != groups[index - 1]
        if not current or new_group or _is_boundary(item) or len(current) >= MAX_BATCH_SIZE:
            current = members.setdefault(item, [])
        current.append(item)
        batch_of[item] = current[0]
    return Batches(members, batch_of)


def _is_boundary(item_id: str) -> bool:
    digest = hashlib.blake2b(item_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % TARGET_BATCH_SIZE == 0
