"""The fan-in: the training set manifest every checkpoint is trained on, and its report."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wan_lora_dagster.engines import training_plan
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.cache_files import (
    latent_cache_name,
    text_cache_name,
)
from wan_lora_dagster.formats.manifest import ExcludedItem, ManifestEntry, TrainingSetManifest
from wan_lora_dagster.media.buckets import bucket_for_section, suggest_buckets
from wan_lora_dagster.media.windows import excluded_reason, frame_windows
from wan_lora_dagster.pipeline.asset_spec import AssetSpec, Partitioning
from wan_lora_dagster.pipeline.caches import (
    LatentSection,
    section_cache_dir,
    section_latent_fingerprint,
    text_cache_dir,
    text_fingerprint,
)
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import CaptionRecord
from wan_lora_dagster.pipeline.items import ITEM_KINDS, KIND_BY_NAME, ItemKind, MediaShape
from wan_lora_dagster.pipeline.records import Record, record_of
from wan_lora_dagster.project import STILL_SUFFIXES
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.whole import Recipe
from wan_lora_dagster.tasks import wan_task

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations

TRAINING_GROUP = "training"
DATASET_REPORT_CODE_VERSION = "1"


NOTHING_TO_TRAIN = {
    "clips": "no training clips (no ranges, every clip too short, or all held out)",
    "stills": f"no training stills (no {', '.join(STILL_SUFFIXES)} image in stills/, "
    "or all held out)",
}


@record_of("training_set")
@dataclass(frozen=True, kw_only=True)
class TrainingSetRecord(Record):
    file: str  # the manifest, out/training_set/<version>.json

    def made_paths(self) -> list[str]:
        return [self.file]


@record_of("dataset_report")
@dataclass(frozen=True, kw_only=True)
class DatasetReportRecord(Record):
    training_set: str  # the manifest's version
    sections: list[dict]  # per section: samples per epoch, exclusions, statistics, buckets


def held_out_clips(clip_ids: list[str], recipe: Recipe) -> set[str]:
    """The user's held-out clips, or a few picked by hash (stable when clips are added)."""
    if recipe.eval.held_out:
        return set(recipe.eval.held_out)
    if len(clip_ids) <= recipe.eval.num_held_out:
        return set()
    by_hash = sorted(clip_ids, key=lambda clip: hashlib.sha256(clip.encode()).hexdigest())
    return set(by_hash[: recipe.eval.num_held_out])


def build_manifest(
    catalog: Catalog,
    recipe: Recipe,
    planned: bool = False,
    read: Callable[[str, str], Record | None] | None = None,
) -> TrainingSetManifest:
    """Every cache file of every clip and still under each section of its source, with its caption.

    `planned`: the files the engine will write (names from musubi's rules), for a dry run
    before any cache exists; otherwise the files the cache records list. `read(asset, item)`:
    the records as the caller already read them (default: read from out/records).
    """
    held_out = held_out_clips(catalog.clip_ids, recipe)
    read = read or catalog.records.read
    caches_of = _planned_caches if planned else _recorded_caches
    entries, excluded = [], []
    for kind in ITEM_KINDS:
        for item_id in kind.ids(catalog):
            caption = read(kind.captions, item_id)
            for section in recipe.sections_for(kind.source):
                files, latent_version, text_file, text_version = caches_of(
                    read, catalog, kind, item_id, caption, section
                )
                if not files:
                    reason = _exclusion_reason(catalog, kind, item_id, section)
                    excluded.append(ExcludedItem(item_id, section.name, reason))
                    continue
                entries.append(
                    ManifestEntry(
                        item_id=item_id,
                        kind=kind.name,
                        section=section.name,
                        latent_files=tuple(files),
                        text_file=text_file,
                        caption=caption.text,
                        caption_origin=caption.origin,
                        caption_version=caption.data_version,
                        latent_version=latent_version,
                        text_version=text_version,
                        num_repeats=section.num_repeats,
                        held_out=item_id in held_out,
                    )
                )
    manifest = TrainingSetManifest(tuple(entries), tuple(excluded), root=catalog.project.root)
    _require_every_section_fed(manifest, recipe)
    return manifest


def _exclusion_reason(catalog: Catalog, kind: ItemKind, item_id: str, section) -> str:
    num_frames = kind.shape(catalog, item_id).num_frames
    return excluded_reason(num_frames, section) or "no latent was written"


def _recorded_caches(
    read, _catalog, kind: ItemKind, item_id: str, _caption: CaptionRecord, section
):
    text = read(kind.text_cache, item_id)
    latent = read(kind.latent_cache, item_id).sections.get(section.name, LatentSection(None))
    return latent.files, latent.fingerprint, text.file, text.data_version


def _planned_caches(
    _read, catalog: Catalog, kind: ItemKind, item_id: str, caption: CaptionRecord, section
):
    project, settings = catalog.project, catalog.project.recipe.training
    directory = section_cache_dir(project, section).relative_to(project.root)
    names = _planned_latent_names(item_id, kind.shape(catalog, item_id), section, settings.task)
    text_file = text_cache_dir(project).relative_to(project.root) / text_cache_name(item_id)
    return (
        [str(directory / name) for name in names],
        section_latent_fingerprint(kind.version(catalog, item_id), section, settings),
        str(text_file),
        text_fingerprint(caption.data_version, settings),
    )


def _planned_latent_names(
    item_id: str, shape: MediaShape, section: DatasetSection, task: str
) -> list[str]:
    """The latent files musubi's rules name: one per frame window, or one per image."""
    spec = wan_task(task)
    architecture = spec.vae.architecture
    if section.source == "stills":  # named by its original size
        return [latent_cache_name(item_id, shape.width, shape.height, architecture=architecture)]
    bucket = bucket_for_section(shape.width, shape.height, section, spec.resolution_step)
    return [
        latent_cache_name(
            item_id, *bucket, window.start_frame, window.num_frames, architecture=architecture
        )
        for window in frame_windows(shape.num_frames, section)
    ]


def _require_every_section_fed(manifest: TrainingSetManifest, recipe: Recipe) -> None:
    """A section that feeds nothing is a mistake to stop at before any GPU time is spent."""
    fed = {entry.section for entry in manifest.training_entries()}
    problems = [
        f"[[datasets]] section '{section.name}': {NOTHING_TO_TRAIN[section.source]}"
        for section in recipe.datasets
        if section.name not in fed
    ]
    if problems:
        raise ConfigError("wan_lora.toml: " + "; ".join(problems))


def dataset_report(catalog: Catalog, manifest: TrainingSetManifest, recipe: Recipe) -> dict:
    """Per section: samples per epoch, exclusions, frame and aspect statistics, bucket ideas."""
    shapes: dict[str, MediaShape] = {}
    for entry in manifest.training_entries():
        if entry.item_id not in shapes:
            shapes[entry.item_id] = KIND_BY_NAME[entry.kind].shape(catalog, entry.item_id)
    samples = training_plan.samples_per_section(manifest)
    batches = training_plan.batches_per_section(samples, recipe.datasets)
    sections = []
    for section in recipe.datasets:
        entries = [e for e in manifest.training_entries() if e.section == section.name]
        sizes = [(shapes[e.item_id].width, shapes[e.item_id].height) for e in entries]
        frames = [shapes[e.item_id].num_frames for e in entries]
        sections.append(
            {
                "section": section.name,
                "source": section.source,
                "resolution": list(section.resolution),
                "items": len(entries),
                "samples_per_epoch": samples.get(section.name, 0),
                "steps_per_epoch": batches.get(section.name, 0),  # on one GPU
                "excluded": [
                    {"item": item.item_id, "reason": item.reason}
                    for item in manifest.excluded
                    if item.section == section.name
                ],
                "frames_min": min(frames, default=0),
                "frames_max": max(frames, default=0),
                "aspect_ratios": sorted({round(w / h, 3) for w, h in sizes}),
                "suggested_buckets": [list(b) for b in suggest_buckets(sizes, section.resolution)],
            }
        )
    return {"training_set": manifest.version, "sections": sections}


def manifest_dir(catalog: Catalog) -> Path:
    return catalog.project.out("training_set")


def load_manifest(catalog: Catalog, version: str) -> TrainingSetManifest:
    return TrainingSetManifest.load(manifest_dir(catalog) / f"{version}.json", catalog.project.root)


def _training_set_rule(snapshot: Expectations, _key: str) -> str | None:
    """The manifest's own hash, once every cache it lists is fresh."""
    manifest, error = snapshot.manifest_attempt
    if error:
        return fingerprint("unbuildable", str(error))  # stale and ready: the step says why
    return manifest.version if manifest else None


def _dataset_report_rule(snapshot: Expectations, _key: str) -> str | None:
    version = snapshot.fresh_data_version("training_set")
    return version and fingerprint("dataset_report", DATASET_REPORT_CODE_VERSION, version)


TRAINING_SET = AssetSpec(
    "training_set",
    TRAINING_GROUP,
    Partitioning.NONE,
    ("text_cache", "latent_cache", "still_text_cache", "still_latent_cache"),
    _training_set_rule,
)


DATASET_REPORT = AssetSpec(
    "dataset_report", TRAINING_GROUP, Partitioning.NONE, ("training_set",), _dataset_report_rule
)
