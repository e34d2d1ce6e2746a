"""Many partitions in one step: the pattern every per-clip and per-checkpoint asset shares.

A step gets a range of partitions, does the stale ones (a fresh one is skipped cheaply), and
records one data version per partition: Dagster's `Output` carries a single data version for the
whole range, so each partition's own version follows it as an `AssetMaterialization`.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dagster as dg

from wan_lora_dagster.engines.base import Progress
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.leftovers import remove_leftovers
from wan_lora_dagster.pipeline.records import RecordStore
from wan_lora_dagster.progress import ProgressThrottle

CLIP_PARTITIONS = dg.DynamicPartitionsDefinition(name="clips")
STILL_PARTITIONS = dg.DynamicPartitionsDefinition(name="stills")
CHECKPOINT_PARTITIONS = dg.DynamicPartitionsDefinition(name="checkpoints")
SINGLE_RUN = dg.BackfillPolicy.single_run()
SKIPPED_TAG = "wan_lora/skipped_fresh"
DATA_VERSION_TAG = "dagster/data_version"
NULL = "NULL"  # Dagster's own marker for a missing input version or event
EVENTS_OF_INPUTS = (
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
)


@dataclass
class StepOutcome:
    """What a multi-partition step did, partition by partition."""

    records: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def make_each(
    asset: str, keys: list[str], make: Callable[[str], dict], log: dg.DagsterLogManager
) -> StepOutcome:
    """Make each partition on its own, so one bad film fails its own clips and no others."""
    outcome = StepOutcome()
    report = ProgressThrottle(asset, log.info)
    for done, key in enumerate(keys):
        report(Progress(asset, done, len(keys)))
        try:
            outcome.records[key] = make(key)
        except UserError as error:
            log.error(f"{key}: {error}")
            outcome.failures[key] = str(error)
    report(Progress(asset, len(keys), len(keys)))
    return outcome


def emit(
    context: dg.AssetExecutionContext,
    outcome: StepOutcome,
    records: RecordStore,
    metadata_for: Callable[[str, dict], dict],
) -> Iterator[dg.Output | dg.AssetMaterialization]:
    """Yield the step's events; raise a Failure naming every failed partition at the end."""
    asset_key = context.asset_key
    asset = asset_key.to_user_string()
    if not outcome.failures:
        yield dg.Output(
            None,
            metadata={"made": len(outcome.records), "skipped_fresh": len(outcome.skipped)},
            tags={SKIPPED_TAG: str(len(outcome.skipped))},
        )
    for key in outcome.skipped:
        outcome.records.setdefault(key, records.read(asset, key))
    yield from partition_events(context, outcome.records, metadata_for)
    remove_leftovers(records.root.parent, context.partition_keys)  # records.root: out/records
    if outcome.failures:
        raise dg.Failure(
            description=f"{len(outcome.failures)} partition(s) of {asset} failed: "
            + "; ".join(f"{key}: {error}" for key, error in outcome.failures.items()),
            metadata={key: dg.MetadataValue.text(error) for key, error in outcome.failures.items()},
            allow_retries=False,
        )


def partition_events(
    context: dg.AssetExecutionContext,
    records_by_key: dict[str, dict],
    metadata_for: Callable[[str, dict], dict],
) -> Iterator[dg.AssetMaterialization]:
    """One materialization per partition, with its own data version and input provenance."""
    asset_key = context.asset_key
    code_version = context.assets_def.code_versions_by_key[asset_key]
    provenance = input_provenance(context, list(records_by_key))
    for key, record in records_by_key.items():
        yield dg.AssetMaterialization(
            asset_key=asset_key,
            partition=key,
            metadata=metadata_for(key, record),
            tags={
                DATA_VERSION_TAG: record["data_version"],
                "dagster/code_version": code_version,
                **provenance[key],
            },
        )


def input_provenance(context: dg.AssetExecutionContext, keys: list[str]) -> dict[str, dict]:
    """Per partition, the data version and event of each input it was made from.

    Dagster writes these tags itself on an `Output`; our per-partition events carry them too, so
    the UI marks exactly the partitions whose own inputs changed. An input is either observed (a
    source) or materialized; a run's own job graph does not say which, so both are asked.
    """
    graph = context.job_def.asset_layer.asset_graph
    own_partitions = graph.get(context.asset_key).partitions_def
    tags: dict[str, dict] = {key: {} for key in keys}
    for dependency in graph.get(context.asset_key).parent_keys:
        same_partitions = graph.get(dependency).partitions_def == own_partitions
        inputs = {}
        for event_type in EVENTS_OF_INPUTS:
            if same_partitions:
                found = _same_partition_inputs(context, dependency, event_type, keys)
            else:
                found = dict.fromkeys(keys, _latest_input(context, dependency, event_type))
            inputs.update({key: value for key, value in found.items() if value[1] != NULL})
        name = dependency.to_user_string()
        for key in keys:
            version, pointer = inputs.get(key, (NULL, NULL))
            tags[key][f"dagster/input_data_version/{name}"] = version
            tags[key][f"dagster/input_event_pointer/{name}"] = pointer
    return tags


def _same_partition_inputs(context, dependency, event_type, keys) -> dict[str, tuple[str, str]]:
    storage = context.instance.event_log_storage
    pointers = storage.get_latest_storage_id_by_partition(dependency, event_type, set(keys))
    versions = storage.get_latest_tags_by_partition(
        dependency, event_type, [DATA_VERSION_TAG], keys
    )
    return {
        key: (
            versions.get(key, {}).get(DATA_VERSION_TAG, NULL),
            str(pointers.get(key, NULL)),
        )
        for key in keys
    }


def _latest_input(context, dependency, event_type) -> tuple[str, str]:
    """An unpartitioned input (the manifest feeding checkpoints): its latest event."""
    instance = context.instance
    fetch = (
        instance.fetch_observations
        if event_type == dg.DagsterEventType.ASSET_OBSERVATION
        else instance.fetch_materializations
    )
    records = fetch(dependency, limit=1).records
    if not records:
        return NULL, NULL
    tags = records[0].event_log_entry.tags or {}
    return tags.get(DATA_VERSION_TAG, NULL), str(records[0].storage_id)
