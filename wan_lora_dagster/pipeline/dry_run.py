"""`wan-lora train --dry-run`: every command the musubi engine would run, without running any.

Cache commands list only the clips whose caches are not fresh; the training command trains on
the training set as the project stands, with the checkpoint names the graph would give it.
"""

from __future__ import annotations

from wan_lora_dagster.engines import create_engine
from wan_lora_dagster.engines.base import LatentJob, TextJob
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline import caches, training
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.dataset import clip_path
from wan_lora_dagster.pipeline.status import Expectations


def dry_run(catalog: Catalog) -> str:
    """Write musubi's dataset TOML under out/musubi/ and return the commands, shell-quoted."""
    from wan_lora_dagster.engines.musubi import format_commands

    project, recipe = catalog.project, catalog.project.recipe
    engine = create_engine(recipe.training, project.out_dir)
    if recipe.training.engine != "musubi":
        raise UserError(
            "wan_lora.toml: --dry-run lists musubi-tuner's commands, and [training] engine is "
            f"'{recipe.training.engine}', which trains in this process."
        )
    expectations = Expectations(catalog)
    manifest = _training_set(catalog, expectations)
    report = training.dataset_report(catalog, manifest, recipe)
    plan = training.checkpoint_plan(manifest, recipe, training.steps_per_epoch(report))
    request = training.train_request(catalog, manifest, plan)
    stale = [c for c in catalog.clip_ids if not expectations.is_fresh("latent_cache", c)]
    latent_jobs = [
        LatentJob(
            clip, clip_path(project, clip), section, caches.section_cache_dir(project, section)
        )
        for clip in stale
        for section in recipe.sections_for("clips")
    ]
    text_jobs = [
        TextJob(
            clip, catalog.records.read("captions", clip)["text"], caches.text_cache_dir(project)
        )
        for clip in catalog.clip_ids
        if not expectations.is_fresh("text_cache", clip)
    ]
    return format_commands(engine.plan(request, latent_jobs, text_jobs))


def _training_set(catalog: Catalog, expectations: Expectations):
    """The fresh manifest, else the one the caches the engine is about to write will make."""
    if expectations.manifest:
        return expectations.manifest
    missing = [
        clip
        for clip in catalog.clip_ids
        if catalog.records.read("captions", clip) is None
        or catalog.records.read("clips", clip) is None
    ]
    if missing:
        raise UserError(
            f"{len(missing)} clip(s) have no clip or caption yet ({', '.join(missing[:5])}): "
            f"run `wan-lora run --project {catalog.project.root} --select +captions` first."
        )
    return training.build_manifest(catalog, catalog.project.recipe, planned=True)
