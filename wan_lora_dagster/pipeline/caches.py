"""The cache half: UMT5 text embeddings per caption and VAE latents per clip and section.

A text cache depends on the caption text only; a latent on the clip and its sections' settings
only. So a caption edit never touches a latent, and a resolution change never touches a text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wan_lora_dagster.engines.base import Engine, LatentJob, ProgressCallback, TextJob
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, AssetSpec, Partitioning
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import CaptionRecord
from wan_lora_dagster.pipeline.made_files import damage
from wan_lora_dagster.pipeline.records import Record, record_of
from wan_lora_dagster.project import Project
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TINY_MODEL, TrainingSettings
from wan_lora_dagster.tasks import wan_task

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations

TEXT_CODE_VERSION = "1"
LATENT_CODE_VERSION = "1"
CACHES_GROUP = "caches"


@record_of("text_cache", "still_text_cache")
@dataclass(frozen=True, kw_only=True)
class TextCacheRecord(Record):
    caption_version: str  # the data version of the caption it encodes
    file: str

    def made_paths(self) -> list[str]:
        return [self.file]


@dataclass(frozen=True)
class LatentSection:
    """One [[datasets]] section's latent files of an item, and what they were made from."""

    fingerprint: str
    files: list[str] = field(default_factory=list)


@record_of("latent_cache", "still_latent_cache")
@dataclass(frozen=True, kw_only=True)
class LatentCacheRecord(Record):
    sections: dict[str, LatentSection] = field(default_factory=dict)

    def made_paths(self) -> list[str]:
        return [name for section in self.sections.values() for name in section.files]

    @classmethod
    def from_json(cls, data: dict) -> LatentCacheRecord:
        sections = {name: LatentSection(**entry) for name, entry in data["sections"].items()}
        return cls(**{**data, "sections": sections})


def model_identity(settings: TrainingSettings, component: str) -> str:
    """Which weights produce a cache: the same weights give interchangeable caches (a T5 stored
    in fp8 gives other embeddings)."""
    rounded = ("fp8",) if component == "t5" and settings.fp8_t5 else ()
    if settings.engine == "musubi":
        return fingerprint(settings.engine, component, getattr(settings, component, None), *rounded)
    tiny_variant = wan_task(settings.task).tiny_model
    if settings.model == TINY_MODEL and tiny_variant != TINY_MODEL:
        # each task has its own tiny variant (other VAE, CLIP or not): its caches are its own
        return fingerprint("diffusers", component, tiny_variant, *rounded)
    return fingerprint("diffusers", component, settings.model, *rounded)


def text_cache_dir(project: Project) -> Path:
    return project.out("cache", "text")


def empty_caption_job(project: Project, settings: TrainingSettings) -> TextJob | None:
    """The empty caption's text cache, which caption dropout trains on: one per text encoder,
    beside the captions' (so a new text encoder makes a new one, as for every caption)."""
    if not settings.caption_dropout_rate:
        return None
    item_id = f"_empty_caption-{model_identity(settings, 't5')}"
    return TextJob(item_id, "", text_cache_dir(project))


def section_cache_dir(project: Project, section: DatasetSection) -> Path:
    return project.out("cache", section.name)


def text_fingerprint(caption_version: str, settings: TrainingSettings) -> str:
    return text_fingerprinter(settings)(caption_version)


def text_fingerprinter(settings: TrainingSettings) -> Callable[[str], str]:
    """text_fingerprint with the settings' part hashed once, for many captions."""
    identity = model_identity(settings, "t5")
    return lambda caption_version: fingerprint(
        "text_cache", TEXT_CODE_VERSION, caption_version, identity
    )


def section_latent_fingerprint(
    item_version: str, section: DatasetSection, settings: TrainingSettings
) -> str:
    return fingerprint(
        "latent",
        LATENT_CODE_VERSION,
        item_version,
        section.settings_fingerprint(),
        model_identity(settings, "vae"),
    )


def latent_fingerprint(
    item_version: str, sections: tuple[DatasetSection, ...], settings: TrainingSettings
) -> str:
    return latent_fingerprinter(sections, settings)(item_version)


def latent_fingerprinter(
    sections: tuple[DatasetSection, ...], settings: TrainingSettings
) -> Callable[[str], str]:
    """latent_fingerprint with the sections' and settings' parts hashed once, for many items
    (`wan-lora status` asks for 30,000 of them)."""
    identity = model_identity(settings, "vae")
    parts = [section.settings_fingerprint() for section in sections]
    return lambda item_version: fingerprint(
        [fingerprint("latent", LATENT_CODE_VERSION, item_version, part, identity) for part in parts]
    )


def make_text_caches(
    catalog: Catalog,
    item_ids: list[str],
    settings: TrainingSettings,
    engine: Engine,
    progress: ProgressCallback,
    caption_asset: str = "captions",
    asset: str = "text_cache",
) -> dict[str, TextCacheRecord]:
    """Encode the final caption of each item; returns item -> record."""
    project = catalog.project
    captions: dict[str, CaptionRecord] = {
        item: catalog.records.read(caption_asset, item) for item in item_ids
    }
    jobs = [TextJob(item, captions[item].text, text_cache_dir(project)) for item in item_ids]
    written = engine.encode_texts(jobs, progress)
    records = {}
    for item in item_ids:
        caption_version = captions[item].data_version
        version = text_fingerprint(caption_version, settings)
        record = TextCacheRecord(
            fingerprint=version,
            data_version=version,
            caption_version=caption_version,
            file=str(written[item].relative_to(project.root)),
        )
        records[item] = catalog.records.write(asset, item, record)
    return records


def make_latent_caches(
    catalog: Catalog,
    item_ids: list[str],
    media: dict[str, Path],
    item_versions: dict[str, str],
    sections: tuple[DatasetSection, ...],
    settings: TrainingSettings,
    engine: Engine,
    progress: ProgressCallback,
    asset: str = "latent_cache",
) -> dict[str, LatentCacheRecord]:
    """Encode each item under each of its sections, re-encoding only sections whose inputs changed.

    Stale files of a re-encoded section are removed first, so no engine ever reuses them.
    """
    project = catalog.project
    old_records = {item: catalog.records.read(asset, item) for item in item_ids}
    # item -> section name -> what it holds: kept as it was, or (a job's) made again
    sections_of: dict[str, dict[str, LatentSection]] = {item: {} for item in item_ids}
    jobs = []
    for item in item_ids:
        old_record = old_records[item]
        for section in sections:
            old = old_record.sections.get(section.name) if old_record else None
            wanted = section_latent_fingerprint(item_versions[item], section, settings)
            if old and old.fingerprint == wanted and _intact(project, old_record, old):
                sections_of[item][section.name] = old
                continue
            for stale in old.files if old else []:
                (project.root / stale).unlink(missing_ok=True)
            jobs.append(LatentJob(item, media[item], section, section_cache_dir(project, section)))
    written = engine.encode_latents(jobs, progress) if jobs else {}
    for job in jobs:
        files = [path for path in written.get(job.item_id, []) if path.parent == job.cache_dir]
        sections_of[job.item_id][job.section.name] = LatentSection(
            section_latent_fingerprint(item_versions[job.item_id], job.section, settings),
            sorted(str(path.relative_to(project.root)) for path in files),
        )
    records = {}
    for item in item_ids:
        version = latent_fingerprint(item_versions[item], sections, settings)
        ordered = {section.name: sections_of[item][section.name] for section in sections}
        record = LatentCacheRecord(fingerprint=version, data_version=version, sections=ordered)
        records[item] = catalog.records.write(asset, item, record)
    return records


def _intact(project: Project, record: LatentCacheRecord, section: LatentSection) -> bool:
    """Whether a section's files are all there and as they were made (a truncated one is not)."""
    files = section.files
    exist = all((project.root / name).is_file() for name in files)
    return exist and not damage(project.root, record, only=files)


def _text_rule(caption_asset: str):
    """A text cache is made from its caption's text alone (its data version), once fresh."""

    def rule(snapshot: Expectations, item_id: str) -> str | None:
        caption_version = snapshot.fresh_data_version(caption_asset, item_id)
        if caption_version is None:
            return None
        encode = snapshot.memo("text", lambda: text_fingerprinter(snapshot.recipe.training))
        return encode(caption_version)

    return rule


def _latent_rule(source: str, media_version: Callable[[Expectations, str], str | None]):
    """A latent cache is made from its item's media and the settings of `source`'s sections;
    None while the media is not made."""

    def rule(snapshot: Expectations, item_id: str) -> str | None:
        version = media_version(snapshot, item_id)
        if version is None:
            return None
        recipe = snapshot.recipe
        encode = snapshot.memo(
            ("latent", source),
            lambda: latent_fingerprinter(recipe.sections_for(source), recipe.training),
        )
        return encode(version)

    return rule


def _clip_version(snapshot: Expectations, clip_id: str) -> str | None:
    return snapshot.fresh_data_version("clips", clip_id)  # the made clip's: its fingerprint


def _still_version(snapshot: Expectations, still_id: str) -> str:
    return snapshot.catalog.still_hashes[still_id]


def _cache_spec(name: str, partitioning: Partitioning, reads: str, rule) -> AssetSpec:
    return AssetSpec(name, CACHES_GROUP, partitioning, (reads,), rule, pool=GPU_POOL)


TEXT_CACHE = _cache_spec("text_cache", Partitioning.CLIPS, "captions", _text_rule("captions"))
LATENT_CACHE = _cache_spec(
    "latent_cache", Partitioning.CLIPS, "clips", _latent_rule("clips", _clip_version)
)
STILL_TEXT_CACHE = _cache_spec(
    "still_text_cache", Partitioning.STILLS, "still_captions", _text_rule("still_captions")
)
STILL_LATENT_CACHE = _cache_spec(
    "still_latent_cache", Partitioning.STILLS, "stills", _latent_rule("stills", _still_version)
)
