"""The asset graph, written once: every asset's spec, in the order `wan-lora run` makes them.

Each spec is declared beside the code that makes its asset (pipeline/asset_spec.py says what a
spec holds). Adding an asset is its module and one entry here.
"""

from __future__ import annotations

from wan_lora_dagster.pipeline.asset_spec import AssetSpec, Partitioning
from wan_lora_dagster.pipeline.caches import (
    LATENT_CACHE,
    STILL_LATENT_CACHE,
    STILL_TEXT_CACHE,
    TEXT_CACHE,
)
from wan_lora_dagster.pipeline.dataset import CAPTIONS, CLIPS
from wan_lora_dagster.pipeline.evaluation import BEST_LORA, EVAL_VIDEOS
from wan_lora_dagster.pipeline.observations import (
    CAPTION_FILES,
    CLIP_RANGES,
    FILMS,
    STILL_CAPTION_TXT,
    STILLS,
)
from wan_lora_dagster.pipeline.preview import PREVIEWS
from wan_lora_dagster.pipeline.stills import STILL_CAPTIONS
from wan_lora_dagster.pipeline.training import LORA_CHECKPOINTS
from wan_lora_dagster.pipeline.training_set import DATASET_REPORT, TRAINING_SET

ASSETS: tuple[AssetSpec, ...] = (
    FILMS,
    CLIP_RANGES,
    CAPTION_FILES,
    STILLS,
    STILL_CAPTION_TXT,
    CLIPS,
    PREVIEWS,
    CAPTIONS,
    TEXT_CACHE,
    LATENT_CACHE,
    STILL_CAPTIONS,
    STILL_TEXT_CACHE,
    STILL_LATENT_CACHE,
    TRAINING_SET,
    DATASET_REPORT,
    LORA_CHECKPOINTS,
    EVAL_VIDEOS,
    BEST_LORA,
)
SPECS = {spec.name: spec for spec in ASSETS}
# The studio's page (`wan-lora ui` serves it) where a person works on each asset by hand:
# Dagster's page of the asset links it
STUDIO_PAGES = {
    "captions": (
        "caption_files",
        "stills",
        "still_caption_txt",
        "clips",
        "previews",
        "captions",
        "still_captions",
    ),
    "ranges": ("films", "clip_ranges"),
    "checkpoints": ("lora_checkpoints", "eval_videos", "best_lora"),
}
STUDIO_PAGE = {asset: page for page, assets in STUDIO_PAGES.items() for asset in assets}
SOURCES = tuple(spec for spec in ASSETS if spec.is_source)
STAGES = tuple(spec.name for spec in ASSETS if not spec.is_source)  # `wan-lora run`'s order


def partitioned(partitioning: Partitioning) -> tuple[str, ...]:
    """The stages partitioned so, in run order."""
    return tuple(name for name in STAGES if SPECS[name].partitioning is partitioning)


def upstream(name: str) -> set[str]:
    """Every asset `name` is made from, directly or not."""
    found: set[str] = set()
    unseen = list(SPECS[name].reads)
    while unseen:
        asset = unseen.pop()
        if asset not in found:
            found.add(asset)
            unseen += SPECS[asset].reads
    return found


def _check_studio_pages() -> None:
    if unknown := set(STUDIO_PAGE) - set(SPECS):
        raise ValueError(f"STUDIO_PAGES names assets not in the table: {sorted(unknown)}")


def _check_order() -> None:
    """Each asset reads only assets listed before it, so the table's order is the run's."""
    seen: set[str] = set()
    for spec in ASSETS:
        if unknown := [name for name in spec.reads if name not in seen]:
            raise ValueError(f"asset {spec.name} reads {unknown}, not listed before it")
        seen.add(spec.name)


_check_order()
_check_studio_pages()
