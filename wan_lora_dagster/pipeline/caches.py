"""The cache half: UMT5 text embeddings per caption and VAE latents per clip and section.

A text cache depends on the caption text only; a latent on the clip and its sections' settings
only. So a caption edit never touches a latent, and a resolution change never touches a text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wan_lora_dagster.engines.base import Engine, LatentJob, ProgressCallback, TextJob
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.made_files import damage
from wan_lora_dagster.project import (
    TINY_MODEL,
    DatasetSection,
    Project,
    TrainingSettings,
    fingerprint,
)
from wan_lora_dagster.tasks import wan_task

TEXT_CODE_VERSION = "1"
LATENT_CODE_VERSION = "1"


def model_identity(settings: TrainingSettings, component: str) -> str:
    """Which weights produce a cache: the same weights give interchangeable caches."""
    if settings.engine == "musubi":
        return fingerprint(settings.engine, component, getattr(settings, component, None))
    tiny_variant = wan_task(settings.task).tiny_model
    if settings.model == TINY_MODEL and tiny_variant != TINY_MODEL:
        # each task has its own tiny variant (other VAE, CLIP or not): its caches are its own
        return fingerprint("diffusers", component, tiny_variant)
    return fingerprint("diffusers", component, settings.model)


def text_cache_dir(project: Project) -> Path:
    return project.out("cache", "text")


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
) -> dict[str, dict]:
    """Encode the final caption of each item; returns item -> record."""
    project = catalog.project
    captions = {item: catalog.records.read(caption_asset, item) for item in item_ids}
    jobs = [TextJob(item, captions[item]["text"], text_cache_dir(project)) for item in item_ids]
    written = engine.encode_texts(jobs, progress)
    records = {}
    for item in item_ids:
        version = text_fingerprint(captions[item]["data_version"], settings)
        records[item] = {
            "fingerprint": version,
            "data_version": version,
            "caption_version": captions[item]["data_version"],
            "file": str(written[item].relative_to(project.root)),
        }
        catalog.records.write(asset, item, records[item])
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
) -> dict[str, dict]:
    """Encode each item under each of its sections, re-encoding only sections whose inputs changed.

    Stale files of a re-encoded section are removed first, so no engine ever reuses them.
    """
    project = catalog.project
    records = {item: catalog.records.read(asset, item) or {"sections": {}} for item in item_ids}
    jobs = []
    for item in item_ids:
        for section in sections:
            old = records[item]["sections"].get(section.name)
            wanted = section_latent_fingerprint(item_versions[item], section, settings)
            if old and old["fingerprint"] == wanted and _intact(project, records[item], old):
                continue
            for stale in old["files"] if old else []:
                (project.root / stale).unlink(missing_ok=True)
            records[item]["sections"][section.name] = {"fingerprint": wanted, "files": []}
            jobs.append(LatentJob(item, media[item], section, section_cache_dir(project, section)))
    written = engine.encode_latents(jobs, progress) if jobs else {}
    for job in jobs:
        files = [path for path in written.get(job.item_id, []) if path.parent == job.cache_dir]
        entry = records[job.item_id]["sections"][job.section.name]
        entry["files"] = sorted(str(path.relative_to(project.root)) for path in files)
    for item in item_ids:
        kept = {section.name for section in sections}
        record = records[item]
        record["sections"] = {k: v for k, v in record["sections"].items() if k in kept}
        record["fingerprint"] = record["data_version"] = latent_fingerprint(
            item_versions[item], sections, settings
        )
        catalog.records.write(asset, item, record)
    return records


def _intact(project: Project, record: dict, section: dict) -> bool:
    """Whether a section's files are all there and as they were made (a truncated one is not)."""
    files = section["files"]
    exist = all((project.root / name).is_file() for name in files)
    return exist and not damage(project.root, record, only=files)
