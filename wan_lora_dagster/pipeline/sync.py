"""Keeping the set of clip partitions equal to what the ranges files declare."""

from __future__ import annotations

import json
from dataclasses import dataclass

from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import caption_store
from wan_lora_dagster.pipeline.records import write_json_atomic


@dataclass(frozen=True)
class PartitionChanges:
    added: list[str]
    removed: list[str]


def partition_changes(declared: list[str], existing: list[str]) -> PartitionChanges:
    existing_set, declared_set = set(existing), set(declared)
    return PartitionChanges(
        added=[key for key in declared if key not in existing_set],
        removed=[key for key in existing if key not in declared_set],
    )


def removed_clips(catalog: Catalog) -> list[str]:
    """Clips declared at the last sync and not now (a partition is a batch, so Dagster's partition
    set does not say which clips went); the list is kept under out/.state/."""
    state = catalog.project.out(".state", "declared_clips.json")
    before = json.loads(state.read_text(encoding="utf-8")) if state.is_file() else []
    declared = catalog.clip_ids
    if before != declared:
        write_json_atomic(state, declared)
    return partition_changes(declared, before).removed


def retire_clips(catalog: Catalog, clip_ids: list[str]) -> list[str]:
    """Move the captions of clips whose ranges were removed to captions/_orphaned/.

    Nothing is deleted: the clip files and caches stay under out/ in case the range comes back.
    """
    store = caption_store(catalog.project)
    moved = [store.orphan(clip_id) for clip_id in clip_ids]
    return [str(path) for path in moved if path is not None]
