"""`wan-lora train --dry-run`: every command the musubi engine would run, without running any.

Cache commands list only the clips and stills whose caches are not fresh; the training command
trains on the training set as the project stands, with the checkpoint names the graph would give it.
"""

from __future__ import annotations

from wan_lora_dagster.engines import create_engine
from wan_lora_dagster.engines.base import LatentJob, TextJob
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline import caches, training, training_set
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.items import ITEM_KINDS, ItemKind
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
    plan = training.checkpoint_plan(manifest, recipe)
    request = training.train_request(catalog, manifest, plan)
    latent_jobs, text_jobs = [], []
    for kind in ITEM_KINDS:
        latent_jobs += _latent_jobs(catalog, kind, _stale(expectations, kind.latent_cache))
        text_jobs += [
            TextJob(
                item_id,
                catalog.records.read(kind.captions, item_id).text,
                caches.text_cache_dir(project),
            )
            for item_id in _stale(expectations, kind.text_cache)
        ]
    return format_commands(engine.plan(request, latent_jobs, text_jobs))


def _stale(expectations: Expectations, asset: str) -> list[str]:
    keys = expectations.partitions(asset)
    return [key for key in keys if not expectations.is_fresh(asset, key)]


def _latent_jobs(catalog: Catalog, kind: ItemKind, item_ids: list[str]) -> list[LatentJob]:
    project = catalog.project
    return [
        LatentJob(
            item_id,
            kind.media(catalog, item_id),
            section,
            caches.section_cache_dir(project, section),
        )
        for item_id in item_ids
        for section in project.recipe.sections_for(kind.source)
    ]


def _training_set(catalog: Catalog, expectations: Expectations):
    """The fresh manifest, else the one the caches the engine is about to write will make."""
    if expectations.manifest:
        return expectations.manifest
    missing = [
        item_id
        for kind in ITEM_KINDS
        for item_id in kind.ids(catalog)
        if catalog.records.read(kind.captions, item_id) is None
    ]
    if missing:
        selection = "+captions,+still_captions"
        raise UserError(
            f"{len(missing)} clip(s) or still(s) have no caption yet ({', '.join(missing[:5])}): "
            f"run `wan-lora run --project {catalog.project.root} --select {selection}` first."
        )
    return training_set.build_manifest(catalog, catalog.project.recipe, planned=True)
