"""Versions of the user's hand-made inputs, per item, so that one edit marks one item unsynced."""

from __future__ import annotations

from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.pipeline.asset_spec import AssetSpec, Partitioning
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import caption_store
from wan_lora_dagster.pipeline.stills import still_caption_store


def film_versions(catalog: Catalog) -> dict[str, str]:
    """Clip -> content hash of the film it is cut from."""
    return {r.clip_id: catalog.film_hashes[r.film_stem] for r in catalog.ranges}


def range_versions(catalog: Catalog) -> dict[str, str]:
    """Clip -> its range (film, start, end); a moved comment or a reordered line is no change."""
    return {r.clip_id: fingerprint(r.film_stem, r.start, r.end) for r in catalog.ranges}


def still_versions(catalog: Catalog) -> dict[str, str]:
    """Still -> content hash of its image."""
    return dict(catalog.still_hashes)


def caption_file_versions(catalog: Catalog) -> dict[str, str]:
    """Clip -> hash of its hand-edited caption text, or 'auto' while the captioner owns it."""
    return _hand_caption_versions(catalog, caption_store(catalog.project), catalog.clip_ids)


def still_caption_file_versions(catalog: Catalog) -> dict[str, str]:
    """Still -> hash of its hand-written caption text, or 'auto' while the captioner owns it."""
    return _hand_caption_versions(catalog, still_caption_store(catalog.project), catalog.still_ids)


def _hand_caption_versions(
    catalog: Catalog, store: CaptionStore, item_ids: list[str]
) -> dict[str, str]:
    """The source is the user's hand edits: the captioner writing its own file is no new version."""
    return {
        item_id: fingerprint(state.text) if state.origin == "edited" else "auto"
        for item_id, state in catalog.caption_states(store, item_ids).items()
    }


SOURCES_GROUP = "sources"
FILMS = AssetSpec(
    "films",
    SOURCES_GROUP,
    Partitioning.CLIPS,
    observe=film_versions,
    description="Source films in films/, per batch of clips: the content hash of the film each "
    "clip is cut from.",
)
CLIP_RANGES = AssetSpec(
    "clip_ranges",
    SOURCES_GROUP,
    Partitioning.CLIPS,
    observe=range_versions,
    description="Curated moments in ranges/<film>.txt (START END [name] [# note]), one "
    "partition per batch of clips.",
)
CAPTION_FILES = AssetSpec(
    "caption_files",
    SOURCES_GROUP,
    Partitioning.CLIPS,
    observe=caption_file_versions,
    description="Hand-editable captions/<clip>.txt files; an edit is a new version, a touch is "
    "not.",
)
STILLS = AssetSpec(
    "stills",
    SOURCES_GROUP,
    Partitioning.STILLS,
    observe=still_versions,
    description="High-resolution images in stills/ (png, jpg, webp), one partition per batch of "
    "images (each named by its stem): the content hashes of the images. Observed while a "
    "section has source = 'stills'.",
)
STILL_CAPTION_TXT = AssetSpec(
    "still_caption_txt",
    SOURCES_GROUP,
    Partitioning.STILLS,
    observe=still_caption_file_versions,
    description="Hand-written stills/<still>.txt captions; an edit is a new version, a touch is "
    "not.",
)
