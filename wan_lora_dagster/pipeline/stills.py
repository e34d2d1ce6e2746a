"""Stills: the images in stills/, each captioned like a clip and trained as one frame.

A still's caption is `stills/<id>.txt` beside it, where musubi-tuner's image datasets keep theirs.
A file the user put there is a hand caption, never overwritten. Where there is none, the
captioner writes that same file and keeps a record of its text under out/ (captioning/store.py),
exactly as for captions/<clip>.txt: a later hand edit of the file is then told apart and kept.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from PIL import Image

from wan_lora_dagster.captioning.backends import CaptionerSettings
from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.media.frames import read_image
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, AssetSpec, Partitioning
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import (
    DATASET_GROUP,
    Captioning,
    CaptionItem,
    CaptionRecord,
    CaptionStates,
    caption_fingerprint,
    caption_items,
    snapshot_captioner,
)
from wan_lora_dagster.project import Project

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations


def still_caption_store(project: Project) -> CaptionStore:
    return CaptionStore(project.stills_dir, project.out("records", "still_captioner_output"))


def still_captioner(config: CaptionerSettings) -> CaptionerSettings:
    """A still is one image: the clips' frames_per_clip neither applies nor re-captions it."""
    return replace(config, frames_per_clip=1)


def make_still_captions(
    catalog: Catalog, still_ids: list[str], captioning: Captioning
) -> dict[str, CaptionRecord | UserError]:
    """Caption stills, in one batch, unless written by hand; record the final texts."""

    def item(still_id: str) -> CaptionItem:
        path = catalog.still_paths[still_id]
        return CaptionItem(
            still_id, catalog.still_hashes[still_id], lambda: [Image.fromarray(read_image(path))]
        )

    return caption_items(
        catalog,
        "still_captions",
        still_caption_store(catalog.project),
        [item(still_id) for still_id in still_ids],
        replace(captioning, config=still_captioner(captioning.config)),
    )


def _still_captions(snapshot: Expectations) -> tuple[CaptionStates, str]:
    def read() -> tuple[CaptionStates, str]:
        catalog = snapshot.catalog
        store = still_caption_store(catalog.project)
        captioner = still_captioner(snapshot_captioner(snapshot)).fingerprint()
        return CaptionStates(catalog, store, catalog.still_ids), captioner

    return snapshot.memo("still_captions", read)


def _still_caption_rule(snapshot: Expectations, still_id: str) -> str:
    states, captioner = _still_captions(snapshot)
    media_version = snapshot.catalog.still_hashes[still_id]
    return caption_fingerprint(
        states.of(still_id), media_version, snapshot.recipe.captions, captioner
    )


STILL_CAPTIONS = AssetSpec(
    "still_captions",
    DATASET_GROUP,
    Partitioning.STILLS,
    ("stills", "still_caption_txt"),
    _still_caption_rule,
    pool=GPU_POOL,
)
