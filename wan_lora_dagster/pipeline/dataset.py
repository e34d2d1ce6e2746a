"""The dataset half: a 16 fps clip per curated range, and a caption per clip.

Every function returns the record it wrote (a caption's data version is the hash of its final
text: an edit that changes nothing in it changes nothing downstream).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from PIL import Image

from wan_lora_dagster.captioning.backends import Captioner, CaptionerSettings
from wan_lora_dagster.captioning.rules import apply_trigger, find_banned_words
from wan_lora_dagster.captioning.store import CaptionState, CaptionStore
from wan_lora_dagster.errors import ConfigError, MediaError, UserError
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.media.cut import ClipInfo, CutSettings, RangeCut, expected_frame_count
from wan_lora_dagster.media.cut_group import cut_clips, group_nearby, ranges_per_ffmpeg
from wan_lora_dagster.media.frames import sample_frames
from wan_lora_dagster.media.scenes import HardCutFinder
from wan_lora_dagster.media.thumbnails import StripFrames
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, AssetSpec, Partitioning
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.records import Record, record_of
from wan_lora_dagster.project import Project
from wan_lora_dagster.recipe.datasets import CaptionSettings

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations

CLIPS_CODE_VERSION = "2"  # 2: cut the same alone or beside other ranges (media/cut.py)
CAPTIONS_CODE_VERSION = "1"
TINY_CAPTIONER = "tiny"
DATASET_GROUP = "dataset"
# Clip groups per worker: the last group to end decides when the stage ends, so each worker
# takes several; fewer, bigger groups share ffmpeg's start-up over more clips.
GROUPS_PER_WORKER = 4


@record_of("clips")
@dataclass(frozen=True, kw_only=True)
class ClipRecord(Record):
    path: str  # the clip, out/clips/<clip>.mp4
    film: str
    ranges_file: str  # ranges/<film>.txt:<line>
    start: float
    end: float
    num_frames: int
    expected_frames: int
    duration: float
    fps: float
    width: int
    height: int
    scene_cuts: list[float]
    thumbnail: str  # its strip of frames, out/thumbnails/<clip>.png

    def made_paths(self) -> list[str]:
        return [self.path, self.thumbnail]


@record_of("captions", "still_captions")
@dataclass(frozen=True, kw_only=True)
class CaptionRecord(Record):
    text: str  # the final text, trigger applied
    origin: str  # "auto" or "edited"
    path: str  # the user's caption file (not made under out/)
    banned_words: list[str] = field(default_factory=list)


def clip_path(project: Project, clip_id: str) -> Path:
    return project.out("clips", f"{clip_id}.mp4")


def clip_fingerprint(catalog: Catalog, clip_id: str, settings: CutSettings) -> str:
    clip_range = catalog.ranges_by_clip[clip_id]
    film_hash = catalog.film_hashes[clip_range.film_stem]
    return fingerprint(
        "clips", CLIPS_CODE_VERSION, film_hash, clip_range.start, clip_range.end, settings.fps
    )


def clip_groups(catalog: Catalog, clip_ids: list[str], workers: int) -> list[list[str]]:
    """`clip_ids` in the groups one ffmpeg cuts together (media/cut_group.py): nearby ranges of
    one film, no more than the film's frame size allows, and small enough that each worker
    takes several groups (the group that ends last decides when the stage ends)."""
    by_film: dict[str, list[str]] = {}
    for clip_id in clip_ids:
        by_film.setdefault(catalog.ranges_by_clip[clip_id].film_stem, []).append(clip_id)
    spread = max(1, math.ceil(len(clip_ids) / (workers * GROUPS_PER_WORKER)))
    groups = []
    for film_stem, film_clips in by_film.items():
        most = min(spread, ranges_per_ffmpeg(*catalog.film_sizes[film_stem]))
        ranges = [catalog.ranges_by_clip[clip_id] for clip_id in film_clips]
        spans = [(clip_range.start, clip_range.end) for clip_range in ranges]
        groups += [[film_clips[index] for index in group] for group in group_nearby(spans, most)]
    return groups


def make_clips(
    catalog: Catalog, clip_ids: list[str], settings: CutSettings
) -> dict[str, ClipRecord | MediaError]:
    """Cut ranges of one film (one ffmpeg for them all), resample to 16 fps, look for hard cuts
    and draw a thumbnail strip per clip: one decode of each new clip counts its frames, finds
    the cuts and picks the strip's frames. Returns each clip's record, or its MediaError."""
    cuts = [_range_cut(catalog, clip_id, settings) for clip_id in clip_ids]
    made = cut_clips(cuts, settings)
    return {
        clip_id: info
        if isinstance(info, MediaError)
        else _record_clip(catalog, clip_id, info, cut, settings)
        for clip_id, cut, info in zip(clip_ids, cuts, made, strict=True)
    }


def _range_cut(catalog: Catalog, clip_id: str, settings: CutSettings) -> RangeCut:
    clip_range = catalog.ranges_by_clip[clip_id]
    expected = expected_frame_count(clip_range.duration, settings.fps)
    return RangeCut(
        catalog.film_paths[clip_range.film_stem],
        clip_range.start,
        clip_range.end,
        clip_path(catalog.project, clip_id),
        (HardCutFinder(settings.fps), StripFrames(expected_frames=expected)),
    )


def _record_clip(
    catalog: Catalog, clip_id: str, info: ClipInfo, cut: RangeCut, settings: CutSettings
) -> ClipRecord:
    project = catalog.project
    clip_range = catalog.ranges_by_clip[clip_id]
    cuts, strip = cut.watchers
    thumbnail = strip.save(project.out("thumbnails", f"{clip_id}.png"), clip=info.path)
    version = clip_fingerprint(catalog, clip_id, settings)
    record = ClipRecord(
        fingerprint=version,
        data_version=version,
        path=str(info.path.relative_to(project.root)),
        film=str(info.source.relative_to(project.root)),
        ranges_file=f"{clip_range.ranges_file.relative_to(project.root)}:{clip_range.line}",
        start=clip_range.start,
        end=clip_range.end,
        num_frames=info.num_frames,
        expected_frames=cut.num_frames(settings),
        duration=info.duration,
        fps=info.fps,
        width=info.width,
        height=info.height,
        scene_cuts=cuts.cuts,
        thumbnail=str(thumbnail.relative_to(project.root)),
    )
    return catalog.records.write("clips", clip_id, record)


def captioner_settings(
    project: Project, settings: CaptionSettings, device: str
) -> CaptionerSettings:
    """The captioner backend's settings; model 'tiny' means the offline plumbing model."""
    model = settings.model
    if model == TINY_CAPTIONER:
        model = str(project.out("models", f"tiny-{settings.captioner}"))
    return CaptionerSettings(
        captioner=settings.captioner,
        model=model,
        prompt=settings.prompt,
        frames_per_clip=settings.frames_per_clip,
        max_new_tokens=settings.max_new_tokens,
        device=device,
        batch_size=settings.batch_size,
    )


def ensure_tiny_captioner(project: Project, captioner: str) -> Path:
    """Build the offline plumbing captioner once per project (random weights: random words)."""
    from wan_lora_dagster.captioning.tiny import build_tiny_blip2, build_tiny_qwen_vl

    build = build_tiny_blip2 if captioner == "blip2" else build_tiny_qwen_vl
    return build(project.out("models", f"tiny-{captioner}"))


def caption_store(project: Project) -> CaptionStore:
    return CaptionStore(project.captions_dir, project.out("records", "captioner_output"))


def caption_fingerprint(
    state: CaptionState, media_version: str, settings: CaptionSettings, captioner: str
) -> str:
    """A hand edit depends on its text only; an auto caption on the media and the captioner
    (`captioner`: its settings' fingerprint, taken once for many items: it looks at every
    file of the model's folder), and on its file being there: a caption file deleted after it
    was written ("missing") is written again, not left out while its text trains on."""
    if state.origin == "edited":
        return fingerprint(
            "captions", CAPTIONS_CODE_VERSION, "edited", state.text, settings.trigger
        )
    return fingerprint(
        "captions",
        CAPTIONS_CODE_VERSION,
        state.origin,  # "auto", or "missing": never a made caption's
        media_version,
        captioner,
        settings.trigger,
    )


@dataclass(frozen=True)
class Captioning:
    """What a captions step captions with: the recipe's rules, the captioner and its settings."""

    settings: CaptionSettings
    config: CaptionerSettings
    model: Captioner | None  # None for captioner "none": hand captions only

    @cached_property
    def config_fingerprint(self) -> str:
        return self.config.fingerprint()


def make_captions(
    catalog: Catalog, clip_ids: list[str], captioning: Captioning
) -> dict[str, CaptionRecord | UserError]:
    """Caption clips from a few of their frames, in one batch, unless edited by hand."""

    def item(clip_id: str) -> CaptionItem:
        clip_record = catalog.records.read("clips", clip_id)
        clip_file = catalog.project.root / clip_record.path
        frames_per_clip = captioning.settings.frames_per_clip
        return CaptionItem(
            clip_id, clip_record.data_version, lambda: sample_frames(clip_file, frames_per_clip)
        )

    store = caption_store(catalog.project)
    return caption_items(catalog, "captions", store, [item(key) for key in clip_ids], captioning)


class CaptionItem(NamedTuple):
    """An item to caption: `frames` is called only when the captioner runs, so a hand caption
    never decodes media."""

    item_id: str
    media_version: str
    frames: Callable[[], list[Image.Image]]


def caption_items(
    catalog: Catalog,
    asset: str,
    store: CaptionStore,
    items: list[CaptionItem],
    captioning: Captioning,
) -> dict[str, CaptionRecord | UserError]:
    """Caption the items not edited by hand, all in one batch; record every item's final text.

    An item whose media cannot be read fails alone (its UserError is its result).
    """
    states = {item.item_id: store.state(item.item_id) for item in items}
    failures: dict[str, UserError] = {}
    clips: dict[str, list[Image.Image]] = {}
    for item in items:
        if states[item.item_id].origin == "edited":
            continue
        try:
            clips[item.item_id] = _frames_to_caption(item, states[item.item_id], captioning)
        except UserError as error:
            failures[item.item_id] = error
    if clips:
        settings = captioning.settings
        generated = captioning.model.caption_batch(list(clips.values()), settings.prompt)
        for item_id, text in zip(clips, generated, strict=True):
            states[item_id] = store.write_auto(
                item_id, apply_trigger(text, settings.trigger), captioning.config_fingerprint
            )
    return {
        item.item_id: failures.get(item.item_id)
        or _caption_record(catalog, asset, item, states[item.item_id], captioning)
        for item in items
    }


def _frames_to_caption(
    item: CaptionItem, state: CaptionState, captioning: Captioning
) -> list[Image.Image]:
    if captioning.model is None:
        raise ConfigError(
            f"{state.path}: no caption for {item.item_id}, and [captions] captioner is 'none'. "
            "Write the caption in that file, or choose a captioner in wan_lora.toml."
        )
    return item.frames()


def _caption_record(
    catalog: Catalog, asset: str, item: CaptionItem, state: CaptionState, captioning: Captioning
) -> CaptionRecord:
    settings = captioning.settings
    final_text = apply_trigger(state.text, settings.trigger)
    record = CaptionRecord(
        fingerprint=caption_fingerprint(
            state, item.media_version, settings, captioning.config_fingerprint
        ),
        data_version=fingerprint("caption-text", final_text),
        text=final_text,
        origin=state.origin,
        path=str(state.path.relative_to(catalog.project.root)),
        banned_words=find_banned_words(final_text, settings.banned_words),
    )
    return catalog.records.write(asset, item.item_id, record)


class CaptionStates:
    """Every item's caption state, read at once (each folder listed once, so a hand caption costs
    no failed open of a captioner record) and shared with the sync of the same catalog."""

    def __init__(self, catalog: Catalog, store: CaptionStore, item_ids: list[str]):
        self.store = store
        self.states = catalog.caption_states(store, item_ids)

    def of(self, item_id: str) -> CaptionState:
        state = self.states.get(item_id)
        return state if state is not None else self.store.state(item_id)


def snapshot_captioner(snapshot: Expectations) -> CaptionerSettings:
    """The captioner's settings, as every caption's fingerprint sees them."""
    project = snapshot.catalog.project
    return snapshot.memo(
        "captioner", lambda: captioner_settings(project, snapshot.recipe.captions, device="cpu")
    )


def _clip_rule(snapshot: Expectations, clip_id: str) -> str:
    # asked for by clips, captions and latent_cache alike
    return snapshot.memo(
        ("clips", clip_id), lambda: clip_fingerprint(snapshot.catalog, clip_id, CutSettings())
    )


def _clip_captions(snapshot: Expectations) -> tuple[CaptionStates, str]:
    """The clips' captions, and the captioner's fingerprint (taken once: it looks at every file
    of the model's folder)."""

    def read() -> tuple[CaptionStates, str]:
        store = caption_store(snapshot.catalog.project)
        states = CaptionStates(snapshot.catalog, store, snapshot.catalog.clip_ids)
        return states, snapshot_captioner(snapshot).fingerprint()

    return snapshot.memo("clip_captions", read)


def _caption_rule(snapshot: Expectations, clip_id: str) -> str | None:
    # the made clip's version (its fingerprint): a clip a full disk stopped blocks its caption
    media_version = snapshot.fresh_data_version("clips", clip_id)
    if media_version is None:
        return None
    states, captioner = _clip_captions(snapshot)
    return caption_fingerprint(
        states.of(clip_id), media_version, snapshot.recipe.captions, captioner
    )


CLIPS = AssetSpec("clips", DATASET_GROUP, Partitioning.CLIPS, ("films", "clip_ranges"), _clip_rule)
CAPTIONS = AssetSpec(
    "captions",
    DATASET_GROUP,
    Partitioning.CLIPS,
    ("clips", "caption_files"),
    _caption_rule,
    pool=GPU_POOL,
)
