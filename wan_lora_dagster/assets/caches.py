"""The caches group: UMT5 text embeddings and VAE latents, in musubi-tuner's file format."""

import dagster as dg

from wan_lora_dagster.assets.partitioned import (
    CLIP_PARTITIONS,
    SINGLE_RUN,
    StepOutcome,
    emit,
    stale_partitions,
)
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline import caches as domain
from wan_lora_dagster.pipeline.dataset import clip_path
from wan_lora_dagster.pipeline.status import expected_fingerprints
from wan_lora_dagster.progress import ProgressThrottle
from wan_lora_dagster.resources import EngineResource, ProjectResource

CACHES_GROUP = "caches"


def _encode(context, project: ProjectResource, asset: str, encode) -> StepOutcome:
    """Encode the stale partitions in one batch (the model loads once for the whole run)."""
    catalog = project.catalog()
    wanted = expected_fingerprints(catalog, asset, context.partition_keys)
    stale, fresh = stale_partitions(catalog.records, asset, context.partition_keys, wanted)
    context.log.info(f"{len(stale)} to encode, {len(fresh)} fresh")
    outcome = StepOutcome(skipped=fresh)
    progress = ProgressThrottle(asset, context.log.info)
    if stale:
        try:
            outcome.records = encode(catalog, stale, progress)
        except UserError as error:
            outcome.failures = dict.fromkeys(stale, str(error))
    return catalog, outcome


@dg.asset(
    group_name=CACHES_GROUP,
    partitions_def=CLIP_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    code_version=domain.TEXT_CODE_VERSION,
    deps=["captions"],
    output_required=False,
    pool="gpu",
    description="UMT5 embedding of each final caption (`<clip>_wan_te.safetensors`, musubi "
    "format). Depends on the caption text only: a caption edit re-encodes one file.",
)
def text_cache(context: dg.AssetExecutionContext, project: ProjectResource, engine: EngineResource):
    def encode(catalog, stale, progress):
        recipe = catalog.project.recipe
        with engine.session(catalog.project) as model:
            return domain.make_text_caches(catalog, stale, recipe.training, model, progress)

    catalog, outcome = _encode(context, project, "text_cache", encode)
    yield from emit(context, outcome, catalog.records, lambda _key, r: {"file": r["file"]})


@dg.asset(
    group_name=CACHES_GROUP,
    partitions_def=CLIP_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    code_version=domain.LATENT_CODE_VERSION,
    deps=["clips"],
    output_required=False,
    pool="gpu",
    description="VAE latents of each clip for every clip section: the frame windows of "
    "musubi-tuner's rules, bucketed to the section's resolution. Depends on the clip and the "
    "section settings only; a section's change re-encodes that section alone.",
)
def latent_cache(
    context: dg.AssetExecutionContext, project: ProjectResource, engine: EngineResource
):
    def encode(catalog, stale, progress):
        recipe = catalog.project.recipe
        versions = {clip: catalog.records.read("clips", clip)["data_version"] for clip in stale}
        media = {clip: clip_path(catalog.project, clip) for clip in stale}
        sections = recipe.sections_for("clips")
        with engine.session(catalog.project) as model:
            return domain.make_latent_caches(
                catalog, stale, media, versions, sections, recipe.training, model, progress
            )

    catalog, outcome = _encode(context, project, "latent_cache", encode)
    yield from emit(context, outcome, catalog.records, _latent_metadata)


def _latent_metadata(_key: str, record: dict) -> dict:
    return {name: len(section["files"]) for name, section in record["sections"].items()}
