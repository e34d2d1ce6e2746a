"""The previews asset: a poster frame and a small preview video per clip (pipeline/preview.py)."""

import dagster as dg

from wan_lora_dagster.assets.declared import declared
from wan_lora_dagster.assets.metadata import image_markdown
from wan_lora_dagster.assets.partitioned import emit, make_each, step_items
from wan_lora_dagster.instance.claims import one_maker
from wan_lora_dagster.pipeline import preview as domain
from wan_lora_dagster.pipeline.parallel import ALL_CORES
from wan_lora_dagster.resources import FfmpegResource, ProjectResource


@dg.asset(
    **declared("previews"),
    code_version=domain.PREVIEW_CODE_VERSION,
    output_required=False,
    description=domain.PREVIEWS.description,
)
@one_maker
def previews(context: dg.AssetExecutionContext, project: ProjectResource, ffmpeg: FfmpegResource):
    catalog = project.catalog()
    settings = ffmpeg.cut_settings()
    batches, stale, fresh = step_items(context, catalog, "previews")
    context.log.info(f"{len(stale)} preview(s) to make, {len(fresh)} fresh")
    outcome = make_each(
        "previews",
        stale,
        lambda clip_id: domain.make_preview(catalog, clip_id, settings),
        context.log,
        workers=ALL_CORES,  # ffmpeg and PyAV's decoding run outside the GIL
    )
    outcome.skipped = fresh
    root = catalog.project.root
    yield from emit(
        context,
        outcome,
        catalog.records,
        lambda clip_id, record: {"poster": image_markdown(root / record.poster, clip_id)},
        batches,
    )
