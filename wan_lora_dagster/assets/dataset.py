"""The dataset group: 16 fps clips cut from the films, and a caption for each clip and still."""

import dagster as dg

from wan_lora_dagster.assets.declared import declared
from wan_lora_dagster.assets.partitioned import (
    StepOutcome,
    emit,
    make_grouped,
    step_items,
)
from wan_lora_dagster.instance.claims import one_maker
from wan_lora_dagster.pipeline import dataset as domain
from wan_lora_dagster.pipeline.device_captions import caption_on_devices
from wan_lora_dagster.pipeline.parallel import ALL_CORES, in_batches
from wan_lora_dagster.pipeline.stills import make_still_captions
from wan_lora_dagster.progress import ProgressThrottle
from wan_lora_dagster.resources import CaptionerResource, FfmpegResource, ProjectResource


@dg.asset(
    **declared("clips"),
    code_version=domain.CLIPS_CODE_VERSION,
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(
            "sixteen_fps", asset="clips", description="Every clip is exactly 16 fps."
        ),
        dg.AssetCheckSpec(
            "frame_count", asset="clips", description="Frames = range length x 16, within one."
        ),
        dg.AssetCheckSpec(
            "no_hard_cuts",
            asset="clips",
            description="No scene cut inside a clip (a cut teaches the model transitions).",
        ),
    ],
    description="One 16 fps h264 clip per curated range, cut frame-accurately with ffmpeg's fps "
    "filter, rotation applied. Partitioned by clip id (film stem + times, or the range's name).",
)
@one_maker
def clips(context: dg.AssetExecutionContext, project: ProjectResource, ffmpeg: FfmpegResource):
    catalog = project.catalog()
    settings = ffmpeg.cut_settings()
    batches, stale, fresh = step_items(context, catalog, "clips")
    context.log.info(f"{len(stale)} clip(s) to cut, {len(fresh)} fresh")
    outcome = make_grouped(
        "clips",
        domain.clip_groups(catalog, stale, ALL_CORES),
        lambda group: domain.make_clips(catalog, group, settings),
        context.log,
        workers=ALL_CORES,  # ffmpeg and PyAV's decoding run outside the GIL
    )
    outcome.skipped = fresh
    yield from emit(context, outcome, catalog.records, _clip_metadata, batches)
    yield from _clip_checks(outcome)


def _clip_metadata(_clip_id: str, record: domain.ClipRecord) -> dict:
    """A row of the batch's table: what the UI shows of each clip."""
    return {
        "num_frames": record.num_frames,
        "duration_s": round(record.duration, 3),
        "size": f"{record.width}x{record.height}",
        "source": f"{record.film} {record.start:.3f}-{record.end:.3f} s",
        "range_line": record.ranges_file,
        "scene_cuts": len(record.scene_cuts),
        "thumbnail": record.thumbnail,
    }


def _clip_checks(outcome: StepOutcome):
    records = outcome.records
    off_rate = [clip for clip, r in records.items() if abs(r.fps - 16) > 1e-6]
    off_count = {
        clip: f"{r.num_frames} frames, expected {r.expected_frames}"
        for clip, r in records.items()
        if abs(r.num_frames - r.expected_frames) > 1
    }
    with_cuts = {clip: r.scene_cuts for clip, r in records.items() if r.scene_cuts}
    yield dg.AssetCheckResult(
        check_name="sixteen_fps", passed=not off_rate, metadata={"clips": off_rate}
    )
    yield dg.AssetCheckResult(check_name="frame_count", passed=not off_count, metadata=off_count)
    yield dg.AssetCheckResult(
        check_name="no_hard_cuts",
        passed=not with_cuts,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={clip: str(times) for clip, times in with_cuts.items()},
    )


def _captions_asset(name: str, make, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        **declared(name),
        code_version=domain.CAPTIONS_CODE_VERSION,
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                "no_banned_words", asset=name, description="No caption names a banned word."
            )
        ],
        description=description,
    )
    @one_maker
    def caption(
        context: dg.AssetExecutionContext, project: ProjectResource, captioner: CaptionerResource
    ):
        yield from _caption_step(context, project, captioner, make)

    return caption


captions = _captions_asset(
    "captions",
    domain.make_captions,
    "captions/<clip>.txt: written by the captioner, edited by hand. A hand edit is never "
    "overwritten; each partition records whether its caption is `auto` or `edited`.",
)
still_captions = _captions_asset(
    "still_captions",
    make_still_captions,
    "stills/<still>.txt beside each image: the user's hand caption when there is one (never "
    "overwritten), else written by the captioner from the image and `auto` until edited by "
    "hand. Trigger phrase and banned words as for clips.",
)


def _caption_step(context, project: ProjectResource, captioner: CaptionerResource, make):
    """Caption the stale partitions with the captioner loaded once; check for banned words."""
    asset = context.asset_key.to_user_string()
    catalog = project.catalog()
    batches, stale, fresh = step_items(context, catalog, asset)
    devices = captioner.split_devices()
    if len(devices) > 1 and len(stale) > 1:
        outcome = StepOutcome(skipped=fresh)
        outcome.records, outcome.failures = caption_on_devices(
            catalog.project.root, stale, make, devices, ProgressThrottle(asset, context.log.info)
        )
        for key, error in outcome.failures.items():
            context.log.error(f"{key}: {error}")
    else:
        settings = catalog.project.recipe.captions
        captioning = domain.Captioning(
            settings,
            domain.captioner_settings(catalog.project, settings, captioner.device),
            captioner.load(catalog.project) if stale else None,
        )
        # hand captions are only files, read on every core; a captioner model captions a
        # batch at a time
        workers = ALL_CORES if captioning.model is None else 1
        groups = in_batches(stale, captioning.config.batch_size)
        outcome = make_grouped(
            asset, groups, lambda keys: make(catalog, keys, captioning), context.log, workers
        )
        outcome.skipped = fresh
    yield from emit(context, outcome, catalog.records, _caption_metadata, batches)
    banned = {key: r.banned_words for key, r in outcome.records.items() if r.banned_words}
    yield dg.AssetCheckResult(
        check_name="no_banned_words",
        passed=not banned,
        metadata={key: ", ".join(words) for key, words in banned.items()},
        description="; ".join(f"{key}: {', '.join(words)}" for key, words in banned.items())
        or None,
    )


def _caption_metadata(_key: str, record: domain.CaptionRecord) -> dict:
    return {"caption": record.text, "origin": record.origin, "file": record.path}
