"""The caches group: UMT5 text embeddings and VAE latents, in musubi-tuner's file format.

Clips and stills have their own cache assets (one asset has one partitions definition), made by
the same steps.
"""

import dagster as dg

from wan_lora_dagster.assets.declared import declared
from wan_lora_dagster.assets.partitioned import (
    StepOutcome,
    emit,
    step_items,
)
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.instance.claims import one_maker
from wan_lora_dagster.pipeline import caches as domain
from wan_lora_dagster.pipeline.items import CLIPS, STILLS, ItemKind
from wan_lora_dagster.progress import ProgressThrottle
from wan_lora_dagster.resources import EngineResource, ProjectResource


def _encode(context, project: ProjectResource, asset: str, encode, unreadable=None):
    """Encode the stale partitions in one batch (the model loads once for the whole run).

    An item whose media cannot be decoded fails alone, before the batch, which would fail whole.
    """
    catalog = project.catalog()
    batches, stale, fresh = step_items(context, catalog, asset)
    context.log.info(f"{len(stale)} to encode, {len(fresh)} fresh")
    outcome = StepOutcome(skipped=fresh, failures=unreadable(catalog, stale) if unreadable else {})
    for key, error in outcome.failures.items():
        context.log.error(f"{key}: {error}")
    readable = [key for key in stale if key not in outcome.failures]
    progress = ProgressThrottle(asset, context.log.info)
    if readable:
        try:
            outcome.records = encode(catalog, readable, progress)
        except UserError as error:
            outcome.failures.update(dict.fromkeys(readable, str(error)))
    return catalog, batches, outcome


def _cache_asset(name: str, code_version: str, description: str):
    """The decorator of a cache asset: many partitions a step, on the GPU pool."""
    return dg.asset(
        **declared(name), code_version=code_version, output_required=False, description=description
    )


def _text_cache_asset(kind: ItemKind, description: str) -> dg.AssetsDefinition:
    @_cache_asset(kind.text_cache, domain.TEXT_CODE_VERSION, description)
    @one_maker
    def encode_texts(
        context: dg.AssetExecutionContext, project: ProjectResource, engine: EngineResource
    ):
        def encode(catalog, stale, progress):
            recipe = catalog.project.recipe
            with engine.session(catalog.project) as model:
                return domain.make_text_caches(
                    catalog, stale, recipe.training, model, progress, kind.captions, kind.text_cache
                )

        catalog, batches, outcome = _encode(context, project, kind.text_cache, encode)
        yield from emit(context, outcome, catalog.records, _text_metadata, batches)

    return encode_texts


def _latent_cache_asset(kind: ItemKind, description: str) -> dg.AssetsDefinition:
    @_cache_asset(kind.latent_cache, domain.LATENT_CODE_VERSION, description)
    @one_maker
    def encode_latents(
        context: dg.AssetExecutionContext, project: ProjectResource, engine: EngineResource
    ):
        def encode(catalog, stale, progress):
            recipe = catalog.project.recipe
            versions = {item: kind.version(catalog, item) for item in stale}
            media = {item: kind.media(catalog, item) for item in stale}
            sections = recipe.sections_for(kind.source)
            with engine.session(catalog.project) as model:
                return domain.make_latent_caches(
                    catalog,
                    stale,
                    media,
                    versions,
                    sections,
                    recipe.training,
                    model,
                    progress,
                    kind.latent_cache,
                )

        catalog, batches, outcome = _encode(
            context, project, kind.latent_cache, encode, kind.unreadable
        )
        yield from emit(context, outcome, catalog.records, _latent_metadata, batches)

    return encode_latents


def _text_metadata(_key: str, record: domain.TextCacheRecord) -> dict:
    return {"file": record.file}


def _latent_metadata(_key: str, record: domain.LatentCacheRecord) -> dict:
    return {name: len(section.files) for name, section in record.sections.items()}


text_cache = _text_cache_asset(
    CLIPS,
    "UMT5 embedding of each final caption (`<clip>_wan_te.safetensors`, musubi format). "
    "Depends on the caption text only: a caption edit re-encodes one file.",
)
latent_cache = _latent_cache_asset(
    CLIPS,
    "VAE latents of each clip for every clip section: the frame windows of musubi-tuner's "
    "rules, bucketed to the section's resolution. Depends on the clip and the section settings "
    "only; a section's change re-encodes that section alone.",
)
still_text_cache = _text_cache_asset(
    STILLS,
    "UMT5 embedding of each still's final caption (`<still>_wan_te.safetensors`, musubi "
    "format). Depends on the caption text only.",
)
still_latent_cache = _latent_cache_asset(
    STILLS,
    "VAE latent of each still for every stills section: one frame, bucketed as musubi-tuner "
    "buckets images, named by the image's own size (`<still>_<W>x<H>_wan.safetensors`). "
    "Depends on the image and the section settings only; an undecodable image fails alone.",
)
