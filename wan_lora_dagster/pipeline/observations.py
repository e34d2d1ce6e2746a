"""Versions of the user's hand-made inputs, per clip, so one edit marks one clip unsynced."""

from __future__ import annotations

from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import caption_store
from wan_lora_dagster.project import fingerprint


def film_versions(catalog: Catalog) -> dict[str, str]:
    """Clip -> content hash of the film it is cut from."""
    return {r.clip_id: catalog.film_hashes[r.film_stem] for r in catalog.ranges}


def range_versions(catalog: Catalog) -> dict[str, str]:
    """Clip -> its range (film, start, end); a moved comment or a reordered line is no change."""
    return {r.clip_id: fingerprint(r.film_stem, r.start, r.end) for r in catalog.ranges}


def caption_file_versions(catalog: Catalog) -> dict[str, str]:
    """Clip -> hash of its hand-edited caption text, or 'auto' while the captioner owns it.

    The source is the user's hand edits: the captioner writing its own file is no new version.
    """
    store = caption_store(catalog.project)
    versions = {}
    for clip_id in catalog.clip_ids:
        state = store.state(clip_id)
        versions[clip_id] = fingerprint(state.text) if state.origin == "edited" else "auto"
    return versions
