"""The training group: the training-set manifest, its report, and the LoRA checkpoints."""

import json

import dagster as dg

from wan_lora_dagster.assets.declared import declared
from wan_lora_dagster.assets.metadata import caption_table, image_markdown
from wan_lora_dagster.assets.partitioned import (
    StepOutcome,
    emit,
    partition_events,
    step_decision,
)
from wan_lora_dagster.engines.background import deliveries
from wan_lora_dagster.engines.base import CheckpointInfo
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.instance.claims import one_maker
from wan_lora_dagster.pipeline import retraining as retrain
from wan_lora_dagster.pipeline import training as domain
from wan_lora_dagster.pipeline import training_set as fan_in
from wan_lora_dagster.pipeline.plots import loss_curve
from wan_lora_dagster.pipeline.records import UNPARTITIONED
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.progress import ProgressThrottle
from wan_lora_dagster.resources import EngineResource, ProjectResource

RETRAIN_TAG = "wan_lora/retrain"  # comma-separated checkpoint keys


@dg.asset(
    **declared("training_set"),
    code_version=domain.LORA_CODE_VERSION,
    description="The manifest of every cache file that feeds training, with each clip's and "
    "still's caption text and versions. Its data version is the manifest's hash: the source of "
    "truth for staleness and lineage at any number of clips.",
)
@one_maker
def training_set(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.Output:
    catalog = project.catalog()
    try:
        manifest = Expectations(catalog).require_manifest()
    except UserError as error:
        raise dg.Failure(str(error), metadata={UNPARTITIONED: str(error)}) from None
    path = manifest.save(fan_in.manifest_dir(catalog))
    file = str(path.relative_to(catalog.project.root))  # as every record: the project may move
    catalog.records.write(
        "training_set",
        UNPARTITIONED,
        fan_in.TrainingSetRecord(
            fingerprint=manifest.version, data_version=manifest.version, file=file
        ),
    )
    return dg.Output(
        None,
        data_version=dg.DataVersion(manifest.version),
        metadata={
            "manifest": dg.MetadataValue.path(file),
            "entries": len(manifest.entries),
            "held_out": len(manifest.held_out_entries()),
            "excluded": len(manifest.excluded),
        },
    )


@dg.asset(
    **declared("dataset_report"),
    code_version=domain.LORA_CODE_VERSION,
    description="Per dataset section: samples per epoch, excluded items and why, frame and "
    "aspect statistics, and bucket resolutions that keep the aspect ratio.",
)
@one_maker
def dataset_report(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.Output:
    catalog = project.catalog()
    expectations = Expectations(catalog)
    manifest = fan_in.load_manifest(catalog, catalog.records.read("training_set").data_version)
    report = fan_in.dataset_report(catalog, manifest, catalog.project.recipe)
    version = expectations.fingerprint("dataset_report")
    record = fan_in.DatasetReportRecord(fingerprint=version, data_version=version, **report)
    catalog.records.write("dataset_report", UNPARTITIONED, record)
    rows = [
        dg.TableRecord(
            {
                "section": s["section"],
                "items": s["items"],
                "samples_per_epoch": s["samples_per_epoch"],
                "excluded": "; ".join(f"{e['item']}: {e['reason']}" for e in s["excluded"]) or "-",
                "suggested_buckets": ", ".join(f"{w}x{h}" for w, h in s["suggested_buckets"]),
            }
        )
        for s in report["sections"]
    ]
    return dg.Output(
        None,
        data_version=dg.DataVersion(version),
        metadata={
            "sections": dg.MetadataValue.table(rows),
            "report": dg.MetadataValue.json(report),
        },
    )


@dg.asset(
    **declared("lora_checkpoints"),
    code_version=domain.LORA_CODE_VERSION,
    output_required=False,
    description="One partition per checkpoint a training run saves. Each records the training-set "
    "version, the captions that fed it, the settings and the loss so far; the LoRA file's own "
    "header carries the manifest hash.",
)
@one_maker
def lora_checkpoints(
    context: dg.AssetExecutionContext, project: ProjectResource, engine: EngineResource
):
    catalog = project.catalog()
    expectations = Expectations(catalog)
    plan, manifest = expectations.plan, expectations.manifest
    if plan is None or not set(context.partition_keys) <= set(plan.keys):
        raise dg.Failure(
            "These checkpoints are not the current training run's: materialize training_set and "
            "dataset_report first (`wan-lora run` does it in order)."
        )
    retraining = retrain_keys(context)  # these only, trained in a folder of their own
    if not retraining and (changed := retrain.changed_checkpoints(catalog, context.partition_keys)):
        raise dg.Failure(" ".join(changed.values()), metadata=changed, allow_retries=False)
    fresh = step_decision(
        context, catalog, "lora_checkpoints", context.partition_keys, expectations
    ).fresh
    outcome = StepOutcome(skipped=fresh)
    metadata = _checkpoint_metadata(catalog, manifest, plan)
    losses: list[tuple[int, float]] = []
    throttle = ProgressThrottle("lora_checkpoints", context.log.info)
    request = domain.train_request(catalog, manifest, plan)
    wanted = [key for key in retraining if key not in fresh]
    if retraining:
        request = retrain.retrain_request(request, plan)
        context.log.info(f"retraining {', '.join(wanted)} in {request.output_dir}")
    else:
        domain.set_aside_unrecorded(catalog, plan)
    with engine.session(catalog.project) as trainer:
        training = deliveries(
            lambda deliver: trainer.train(request, deliver, deliver), trainer.cancel
        )
        for landed in training:
            if isinstance(landed, CheckpointInfo):
                key = domain.checkpoint_key(plan, landed.epoch, landed.step)
                if key in fresh or key in outcome.records or (retraining and key not in wanted):
                    continue  # recorded by an interrupted launch or this one, or sound (retraining)
                if retraining:
                    landed = _adopt(context, catalog, landed)
                recorded = _record_checkpoint(context, catalog, plan, manifest, landed, losses)
                outcome.records.update(recorded)
                yield from partition_events(context, recorded, metadata)
                if retraining and set(wanted) <= outcome.records.keys():
                    training.close()  # what follows the wanted checkpoints is made already
                    break
            else:
                throttle(landed)
                if landed.resumed is not None:  # the steps before it, where the engine kept them
                    losses[:] = landed.resumed.loss_curve
                if landed.loss is not None:
                    losses.append((landed.done, landed.loss))
    if retraining:
        retrain.drop_scratch(request)
    # Dagster's range-wide Output goes first, so each checkpoint's own event stays the latest.
    yield from emit(context, outcome, catalog.records, metadata)


def retrain_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The checkpoints `wan-lora retrain` asked for (none: an ordinary training run)."""
    return [key for key in context.run.tags.get(RETRAIN_TAG, "").split(",") if key]


def _adopt(context, catalog, landed: CheckpointInfo) -> CheckpointInfo:
    placed, moved = retrain.adopt(catalog, landed)
    for path in moved:
        context.log.warning(f"{placed.path.name} was in the way: moved to {path}")
    return placed


def _record_checkpoint(context, catalog, plan, manifest, info: CheckpointInfo, losses):
    """Write a landed checkpoint's record and loss curve: {key: record}, empty if unplanned."""
    key = domain.checkpoint_key(plan, info.epoch, info.step)
    if key is None:
        context.log.warning(f"{info.path.name}: not a planned checkpoint, kept but not recorded")
        return {}
    if broken := retrain.incomplete_files(catalog, info):
        raise dg.Failure(
            f"checkpoint {key}: {', '.join(broken)} is not whole (cut short by a crash or a "
            f"full disk); it is not recorded. {retrain.way_back(key)}",
            allow_retries=False,
        )
    record = domain.checkpoint_record(catalog, plan, key, manifest, info)
    # up to its own step: one an interrupted launch saved is announced after later steps
    loss_curve([point for point in losses if point[0] <= info.step], _loss_curve_path(catalog, key))
    context.log.info(f"checkpoint {key}: {info.path.name}, loss {info.loss}")
    return {key: record}


def _loss_curve_path(catalog, key: str):
    return catalog.project.out("checkpoints", f"{key}.loss.png")


def _checkpoint_metadata(catalog, manifest, plan):
    """The metadata of a checkpoint's event: its lineage (manifest, captions) and training."""
    settings = dg.MetadataValue.json(json.loads(catalog.project.recipe.training.model_dump_json()))
    manifest_file = fan_in.manifest_dir(catalog).relative_to(catalog.project.root)
    logs = domain.log_dir(catalog, plan).relative_to(catalog.project.root)
    batch = domain.checkpoint_header(manifest, catalog.project.recipe, plan)
    table = caption_table(
        [
            {
                "item": e.item_id,
                "origin": e.caption_origin,
                "version": e.caption_version,
                "text": e.caption,
            }
            for e in manifest.captions_by_item().values()
        ]
    )

    def metadata(key: str, record: domain.CheckpointRecord) -> dict:
        return {
            "training_set": record.training_set,
            "manifest": dg.MetadataValue.path(f"{manifest_file}/{record.training_set}.json"),
            "captions": table,
            "epoch": record.epoch,
            "step": record.step,
            "loss": record.loss,
            "lora_file": dg.MetadataValue.path(record.file),
            "settings": settings,
            "loss_curve": image_markdown(_loss_curve_path(catalog, key), "loss curve"),
            "tensorboard": dg.MetadataValue.path(str(logs)),
            "gpus": int(batch["wan_lora.gpus"]),
            "effective_batch_size": dg.MetadataValue.json(
                json.loads(batch["wan_lora.effective_batch_size"])
            ),
        }

    return metadata
