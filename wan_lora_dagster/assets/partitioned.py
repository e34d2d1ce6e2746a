"""Many partitions in one step: the pattern every per-clip and per-checkpoint asset shares.

A clip (or still) partition is a batch of items (pipeline/batches.py says why). A step gets a
range of batches, makes their stale items (a fresh one is skipped cheaply), and records one data
version per batch: Dagster's `Output` carries a single data version for the whole range, so each
batch's own version follows it as an `AssetMaterialization` whose table lists its items.
A checkpoint partition is its own single item.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dagster as dg

from wan_lora_dagster.assets.metadata import rows_table
from wan_lora_dagster.engines.base import Progress
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.instance.observation_log import DATA_VERSION_TAG
from wan_lora_dagster.pipeline.batches import Batches
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.decisions import StageDecision
from wan_lora_dagster.pipeline.leftovers import remove_leftovers
from wan_lora_dagster.pipeline.parallel import (
    GroupMaker,
    make_groups_in_parallel,
    make_in_parallel,
)
from wan_lora_dagster.pipeline.records import Record, RecordStore
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.progress import ProgressThrottle

CLIP_PARTITIONS = dg.DynamicPartitionsDefinition(name="clip_batches")
STILL_PARTITIONS = dg.DynamicPartitionsDefinition(name="still_batches")
CHECKPOINT_PARTITIONS = dg.DynamicPartitionsDefinition(name="checkpoints")
SINGLE_RUN = dg.BackfillPolicy.single_run()
SKIPPED_TAG = "wan_lora/skipped_fresh"
DECISION_TAG = "wan_lora/stage_decision"  # the decision `wan-lora run` hands the step
NULL = "NULL"  # Dagster's own marker for a missing input version or event
EVENTS_OF_INPUTS = (
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
)


@dataclass
class StepOutcome:
    """What a multi-partition step did, partition by partition."""

    records: dict[str, Record] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def batches_of(catalog: Catalog, partitions_def: dg.PartitionsDefinition | None) -> Batches | None:
    """The batches an asset's partitions are, or None where each partition is one item."""
    if partitions_def == CLIP_PARTITIONS:
        return catalog.clip_batches
    if partitions_def == STILL_PARTITIONS:
        return catalog.still_batches
    return None


def batch_versions(
    catalog: Catalog,
    partitions_def: dg.PartitionsDefinition,
    versions_of: Callable[[Catalog], dict[str, str]],
) -> dict[str, str]:
    """An observed source's versions per batch, from its versions per item."""
    return batches_of(catalog, partitions_def).versions(versions_of(catalog))


def step_items(
    context: dg.AssetExecutionContext, catalog: Catalog, asset: str
) -> tuple[Batches, list[str], list[str]]:
    """The run's batches, and their items to make (stale, with fresh inputs) and to skip (fresh).

    An item whose inputs are not fresh is neither: its batch is recorded once it can be made.
    """
    batches = batches_of(catalog, context.assets_def.partitions_def)
    decision = step_decision(context, catalog, asset, batches.items(context.partition_keys))
    return batches, decision.make, decision.fresh


def step_decision(
    context: dg.AssetExecutionContext,
    catalog: Catalog,
    asset: str,
    keys: list[str],
    expectations: Expectations | None = None,
) -> StageDecision:
    """What the step makes of `keys`: as `wan-lora run` decided for the stage, else (a run from
    the UI, or one re-executed after its command ended) decided now, by the same function."""
    handed = context.run.tags.get(DECISION_TAG)
    if handed:
        try:
            decision = StageDecision.load(catalog.project.root / handed)
        except FileNotFoundError:  # its stage is over
            decision = None
        if decision and decision.asset == asset and decision.covers(keys):
            return decision.of(keys)
    return (expectations or Expectations(catalog)).decide(asset, keys)


def make_each(
    asset: str,
    keys: list[str],
    make: Callable[[str], dict],
    log: dg.DagsterLogManager,
    workers: int = 1,
) -> StepOutcome:
    """Make each partition on its own, `workers` at a time, so one bad film fails its own clips
    and no others."""
    each = make_in_parallel(keys, make, workers, _reporter(asset, len(keys), log))
    return StepOutcome(records=each.made, failures=each.failures)


def make_grouped(
    asset: str,
    groups: list[list[str]],
    make_group: GroupMaker,
    log: dg.DagsterLogManager,
    workers: int,
) -> StepOutcome:
    """As `make_each`, with the items made a group at a time (ranges one ffmpeg cuts)."""
    total = sum(len(group) for group in groups)
    each = make_groups_in_parallel(groups, make_group, workers, _reporter(asset, total, log))
    return StepOutcome(records=each.made, failures=each.failures)


def _reporter(asset: str, total: int, log: dg.DagsterLogManager):
    """Progress as items end, and each failure in the run's log."""
    report = ProgressThrottle(asset, log.info)
    report(Progress(asset, 0, total))

    def done(key: str, count: int, error: str | None) -> None:
        if error:
            log.error(f"{key}: {error}")
        report(Progress(asset, count, total))

    return done


def emit(
    context: dg.AssetExecutionContext,
    outcome: StepOutcome,
    records: RecordStore,
    metadata_for: Callable[[str, Record], dict],
    batches: Batches | None = None,
) -> Iterator[dg.Output | dg.AssetMaterialization]:
    """Yield the step's events; raise a Failure naming every failed item at the end.

    A batch is recorded when all its items are made or fresh; `batches` None: each partition is
    one item.
    """
    asset = context.asset_key.to_user_string()
    for key in outcome.skipped:
        outcome.records.setdefault(key, records.read(asset, key))
    complete = None
    if batches is not None:
        complete = {
            key: members
            for key in context.partition_keys
            if (members := batches.members.get(key))
            and all(item in outcome.records for item in members)
        }
    # The range-wide Output marks every partition of the run made: only when every one is.
    if not outcome.failures and (complete is None or len(complete) == len(context.partition_keys)):
        yield dg.Output(
            None,
            metadata={
                "made": len(outcome.records) - len(outcome.skipped),
                "skipped_fresh": len(outcome.skipped),
            },
            tags={SKIPPED_TAG: str(len(outcome.skipped))},
        )
    yield from partition_events(context, outcome.records, metadata_for, complete)
    # records.root is out/records; a temporary is named after its item, not its batch
    remove_leftovers(records.root.parent, outcome.records)
    if outcome.failures:
        raise dg.Failure(
            description=f"{len(outcome.failures)} partition(s) of {asset} failed: "
            + "; ".join(f"{key}: {error}" for key, error in outcome.failures.items()),
            metadata={key: dg.MetadataValue.text(error) for key, error in outcome.failures.items()},
            allow_retries=False,
        )


def partition_events(
    context: dg.AssetExecutionContext,
    records: dict[str, Record],
    metadata_for: Callable[[str, Record], dict],
    batches: dict[str, list[str]] | None = None,
) -> Iterator[dg.AssetMaterialization]:
    """One materialization per partition, with its own data version and input provenance.

    `batches`: partition -> its items where a partition is a batch; None: each record's key is
    a partition.
    """
    asset_key = context.asset_key
    code_version = context.assets_def.code_versions_by_key[asset_key]
    keys = list(records) if batches is None else list(batches)
    provenance = input_provenance(context, keys)
    for key in keys:
        if batches is None:
            version, metadata = records[key].data_version, metadata_for(key, records[key])
        else:
            items = batches[key]
            version = fingerprint([(item, records[item].data_version) for item in items])
            rows = [{"item": item, **metadata_for(item, records[item])} for item in items]
            metadata = {"items": len(items), "contents": rows_table(rows)}
        yield dg.AssetMaterialization(
            asset_key=asset_key,
            partition=key,
            metadata=metadata,
            tags={
                DATA_VERSION_TAG: version,
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
