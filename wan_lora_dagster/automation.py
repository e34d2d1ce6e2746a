"""Sensors, the retraining schedule and the automation conditions of the cheap stages."""

import dagster as dg

from wan_lora_dagster.assets.partitioned import (
    CHECKPOINT_PARTITIONS,
    CLIP_PARTITIONS,
    STILL_PARTITIONS,
)
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.pipeline.sync import (
    PartitionChanges,
    partition_changes,
    removed_clips,
    retire_clips,
)
from wan_lora_dagster.pipeline.training import retrain_reason
from wan_lora_dagster.resources import ProjectResource

AC = dg.AutomationCondition

# Cheap stages follow their inputs' data versions, not every new materialization: a re-run that
# reproduces the same caption text does not re-encode it.
FOLLOWS_INPUT_VERSIONS = (
    (AC.newly_missing() | AC.any_deps_match(AC.data_version_changed())).since_last_handled()
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
).with_label("follows its inputs' data versions")
TRAINING_TARGET = ["lora_checkpoints", "eval_videos"]


def sync_partitions(instance: dg.DagsterInstance, catalog: Catalog) -> dict[str, PartitionChanges]:
    """Batches of clips as ranges/ declares them (a removed clip's caption is orphaned), batches of
    stills as in stills/ (a removed image's caption stays beside where it was).

    While the project has errors nothing is removed: a mistyped line or an unplugged drive
    hides clips the user still means, and their hand-edited captions must stay where they are.
    """
    remove = not catalog.problems.errors
    clips = _sync(instance, CLIP_PARTITIONS, catalog.clip_batches.keys, remove)
    if remove:
        retire_clips(catalog, removed_clips(catalog))
    return {
        "batch of clips": clips,
        "batch of stills": _sync(instance, STILL_PARTITIONS, catalog.still_batches.keys, remove),
    }


def _sync(
    instance: dg.DagsterInstance,
    partitions: dg.DynamicPartitionsDefinition,
    declared: list[str],
    remove: bool,
) -> PartitionChanges:
    changes = partition_changes(declared, instance.get_dynamic_partitions(partitions.name))
    if not remove:
        changes.removed.clear()
    if changes.added:
        instance.add_dynamic_partitions(partitions.name, changes.added)
    for key in changes.removed:
        instance.delete_dynamic_partition(partitions.name, key)
    return changes


def add_checkpoint_partitions(instance: dg.DagsterInstance, keys: list[str]) -> None:
    existing = set(instance.get_dynamic_partitions(CHECKPOINT_PARTITIONS.name))
    missing = [key for key in keys if key not in existing]
    if missing:
        instance.add_dynamic_partitions(CHECKPOINT_PARTITIONS.name, missing)


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def project_files_sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
    """Keeps the clip and still partitions equal to ranges/ and stills/, and names the next
    training run's checkpoints."""
    try:
        catalog = project.catalog()
    except UserError as error:
        return dg.SkipReason(str(error))
    changes = sync_partitions(context.instance, catalog)
    plan = Expectations(catalog).plan
    if plan:
        add_checkpoint_partitions(context.instance, list(plan.keys))
    counts = "; ".join(
        f"{len(change.added)} {kind} added, {len(change.removed)} removed"
        for kind, change in changes.items()
    )
    # the UI's tick history is where a user of the UI alone sees what is wrong with the files
    return dg.SkipReason("\n".join(filter(None, [counts, catalog.problems.report()])))


def retrain_schedule(cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        cron_schedule=cron,
        target=TRAINING_TARGET,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Retrains when, and only when, the training set changed since the last run.",
    )
    def retrain(context: dg.ScheduleEvaluationContext, project: ProjectResource):
        catalog = project.catalog()
        expectations = Expectations(catalog)
        plan = expectations.plan
        current = expectations.manifest.version if plan else None
        should, reason = retrain_reason(catalog, current)
        if not should:
            return dg.SkipReason(reason)
        add_checkpoint_partitions(context.instance, list(plan.keys))
        return dg.RunRequest(
            run_key=plan.train_id,
            tags={
                "dagster/asset_partition_range_start": plan.keys[0],
                "dagster/asset_partition_range_end": plan.keys[-1],
                "wan_lora/reason": reason,
            },
        )

    return retrain
