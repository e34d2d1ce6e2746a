"""Runs the graph for the command line through the project's own Dagster instance.

Part of the Dagster layer. Each stage materializes exactly its stale partitions, in order, as
runs the UI shows; what is fresh is counted and skipped, and a failure blocks only what follows
from it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import dagster as dg

from wan_lora_dagster import progress
from wan_lora_dagster.assets.partitioned import DECISION_TAG, batch_versions, batches_of
from wan_lora_dagster.assets.training import RETRAIN_TAG
from wan_lora_dagster.automation import add_checkpoint_partitions, sync_partitions
from wan_lora_dagster.definitions import build_definitions
from wan_lora_dagster.deployment.batch_runs import RunOutcome, run_at_once
from wan_lora_dagster.deployment.jobs import execute_on_workers
from wan_lora_dagster.engines.base import Progress
from wan_lora_dagster.instance.claims import (
    CLAIMANT_TAG,
    KILLED_TAG,
    PROCESS_TAG,
    Claims,
    Holder,
    release_dead_runs,
    this_process,
)
from wan_lora_dagster.instance.observation_log import DATA_VERSION_TAG, record_observations
from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.instance.team import team_settings
from wan_lora_dagster.interrupt_logging import hide_interrupted_closes
from wan_lora_dagster.pipeline.asset_spec import Partitioning
from wan_lora_dagster.pipeline.asset_table import SOURCES, SPECS, STAGES
from wan_lora_dagster.pipeline.batches import Batches, identity_batches
from wan_lora_dagster.pipeline.catalog import Catalog, load_catalog
from wan_lora_dagster.pipeline.decisions import StageDecision, handed_over
from wan_lora_dagster.pipeline.records import UNPARTITIONED
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.pipeline.status_at_scale import check_items_on_cores, no_cycle_collection
from wan_lora_dagster.pipeline.status_report import asset_status
from wan_lora_dagster.pipeline.training import LORA_CHECKPOINTS
from wan_lora_dagster.project import Project
from wan_lora_dagster.run_outcomes import failure_messages, interrupted_by, was_interrupted

# The run log keeps every event and stack trace for the UI; the terminal shows progress bars and
# the summary, which names each failed partition's error.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class StageSummary:
    materialized: list[str] = field(default_factory=list)
    skipped_fresh: int = 0
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    made_elsewhere: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


@dataclass
class StagePlan:
    """A stage's stale items ready to make, and the partitions (batches) whose runs make them."""

    expectations: Expectations
    decision: StageDecision
    summary: StageSummary
    batches: Batches
    partitions: list[str]

    @property
    def ready(self) -> list[str]:
        return self.decision.make


class ProjectRunner:
    def __init__(self, project: Project):
        hide_interrupted_closes()  # a Ctrl-C is reported once, as the run's orderly stop
        self.project = project
        self.instance = open_instance(project)
        self.defs = build_definitions(project.root)
        self.graph = self.defs.resolve_asset_graph()
        self.team = team_settings(self.instance)  # None: steps run in this process
        self.retraining: list[str] = []  # the checkpoints `retrain` trains again
        # The project's state as last read. Reading it costs a second or more at 30,000 clips
        # (every record, caption and made file): a stage that launched nothing changed nothing,
        # so the next stage plans on the same snapshot.
        self.snapshot: Expectations | None = None

    def sync(self) -> Catalog:
        """Partitions equal to ranges/ and stills/; observations of the user's files recorded."""
        catalog = load_catalog(self.project)
        sync_partitions(self.instance, catalog)
        for source in SOURCES:
            versions = batch_versions(catalog, self._partitions(source.name), source.observe)
            self._observe(source.name, versions)
        return catalog

    def _partitions(self, asset: str) -> dg.PartitionsDefinition | None:
        return self.graph.get(dg.AssetKey(asset)).partitions_def

    def _batches(self, asset: str, catalog: Catalog, keys: list[str]) -> Batches:
        """How the asset's items are grouped into partitions (each its own, but for clips and
        stills)."""
        return batches_of(catalog, self._partitions(asset)) or identity_batches(keys)

    def _observe(self, asset: str, versions: dict[str, str]) -> None:
        """Record an observation for each item whose version differs from the last one seen."""
        seen = self.instance.event_log_storage.get_latest_tags_by_partition(
            dg.AssetKey(asset), dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG]
        )
        changed = {
            key: version
            for key, version in versions.items()
            if seen.get(key, {}).get(DATA_VERSION_TAG) != version
        }
        record_observations(self.instance, asset, changed)

    def select(self, selection: str | None) -> list[str]:
        """Asset names in run order; `+name` adds its upstream, `name+` its downstream."""
        if not selection:
            return list(STAGES)
        chosen: set[str] = set()
        for term in (part.strip() for part in selection.split(",")):
            name = term.strip("+")
            if name not in STAGES:
                raise dg.DagsterInvalidInvocationError(
                    f"unknown asset '{name}' in --select; choose from {', '.join(STAGES)}"
                )
            picked = dg.AssetSelection.assets(name)
            if term.startswith("+"):
                picked = picked.upstream()
            if term.endswith("+"):
                picked = picked.downstream()
            chosen |= {key.to_user_string() for key in picked.resolve(self.graph)}
        return [asset for asset in STAGES if asset in chosen]

    def run(self, selection: str | None = None) -> dict[str, StageSummary]:
        """Stage by stage; an interrupt (Ctrl-C, SIGTERM) ends the stage in hand and the rest."""
        release_dead_runs(self.instance)
        self.snapshot = Expectations(self.sync())
        summaries = {}
        for asset in self.select(selection):
            summaries[asset] = self._run_stage(asset)
            if summaries[asset].interrupted:
                break
        return summaries

    def retrain(self, keys: list[str]) -> StageSummary:
        """Train these damaged or lost checkpoints again (pipeline/retraining.py says how)."""
        release_dead_runs(self.instance)
        self.snapshot = Expectations(self.sync())
        self.retraining = keys
        try:
            return self._run_stage(LORA_CHECKPOINTS.name)
        finally:
            self.retraining = []

    def _run_stage(self, asset: str) -> StageSummary:
        """The stage's stale partitions, claimed first: what another run is making is waited
        for, and what it made is counted as such, not made again."""
        claims, owner = Claims(self.instance), f"{this_process()}:{asset}"
        plan = self._plan_stage(asset)
        summary, ready = plan.summary, plan.ready
        partitions = plan.partitions
        try:
            waited = bool(partitions) and claims.claim(
                owner, asset, partitions, on_wait=_print_wait(asset)
            )
        except KeyboardInterrupt:  # Ctrl-C while waiting for the other run: nothing was claimed
            summary.interrupted = True
            return summary
        if waited:
            claimed = set(partitions)
            self.snapshot = None  # the other run made some of them
            plan = self._plan_stage(asset)
            now = plan.expectations
            summary = plan.summary
            summary.made_elsewhere = [key for key in ready if now.is_fresh(asset, key)]
            summary.skipped_fresh -= len(summary.made_elsewhere)
            ready = plan.ready
            partitions = [key for key in plan.partitions if key in claimed] if ready else []
        try:
            if partitions:
                decision = plan.decision.of(plan.batches.items(partitions))
                with handed_over(decision, self.project) as decision_file:
                    tags = {CLAIMANT_TAG: owner}
                    if decision_file:
                        tags[DECISION_TAG] = decision_file
                    self._launch(asset, partitions, plan.batches, summary, tags)
        finally:
            claims.release(owner)
        if partitions:
            self.snapshot = Expectations(load_catalog(self.project))
        after = self.snapshot
        for key in ready:
            (summary.materialized if after.is_fresh(asset, key) else summary.failed).append(key)
        summary.errors = {
            key: summary.errors[key] for key in summary.failed if key in summary.errors
        }
        return summary

    def _plan_stage(self, asset: str) -> StagePlan:
        """What the stage must make now, and the partitions (batches) whose runs make it."""
        if self.snapshot is None:
            self.snapshot = Expectations(load_catalog(self.project))
        expectations = self.snapshot
        keys = expectations.partitions(asset)
        if _per_checkpoint(asset):
            add_checkpoint_partitions(self.instance, keys)
        decision = expectations.decide(asset, keys)
        if self.retraining:  # those only: the others' run goes on with `wan-lora run`
            decision = decision.of(self.retraining)
        summary = StageSummary(skipped_fresh=len(decision.fresh), blocked=decision.blocked)
        # one training run saves every checkpoint of the plan, and resumes where it stopped; a
        # retraining's run makes (and marks made) its checkpoints only
        whole_run = SPECS[asset].made_in_one_run and decision.make and not self.retraining
        launch = keys if whole_run else decision.make
        batches = self._batches(asset, expectations.catalog, keys)
        return StagePlan(expectations, decision, summary, batches, batches.containing(launch))

    def _launch(
        self,
        asset: str,
        partitions: list[str],
        batches: Batches,
        summary: StageSummary,
        stage_tags: dict[str, str],
    ) -> None:
        runs = self._runs_for(asset, partitions)
        if self.team:
            if not _per_checkpoint(asset):
                runs = [[batch] for run in runs for batch in run]  # a worker's task: one batch
            self._launch_on_workers(asset, runs, batches, summary, stage_tags)
            return
        for run_keys in runs:
            result = self._execute(asset, run_keys, stage_tags)
            items = batches.items(run_keys)
            summary.interrupted = was_interrupted(result)
            if summary.interrupted:
                summary.errors.update(dict.fromkeys(items, "cancelled"))
                break
            summary.errors.update(failure_messages(result, items))

    def _launch_on_workers(
        self,
        asset: str,
        runs: list[list[str]],
        batches: Batches,
        summary: StageSummary,
        stage_tags: dict[str, str],
    ) -> None:
        """Every batch's run at once, so that every worker is busy; each run in a process of its
        own, which reports the errors of its items."""

        def run_one(keys: list[str]) -> RunOutcome:
            result = self._execute(asset, keys, stage_tags)
            errors = failure_messages(result, batches.items(keys))
            return RunOutcome(interrupted=was_interrupted(result), errors=errors)

        def report(done: int, total: int) -> None:
            progress.notify(asset, Progress("batches", done, total))

        report(0, len(runs))
        ended = run_at_once(runs, run_one, self.team.runs_in_flight, report)
        summary.interrupted = ended.interrupted
        for keys, outcome in ended.runs:
            items = batches.items(keys)
            if outcome.interrupted:
                summary.interrupted = True
                summary.errors.update(dict.fromkeys(items, "cancelled"))
            elif outcome.lost:
                summary.errors.update(dict.fromkeys(items, outcome.lost))
            summary.errors.update(outcome.errors)

    def _runs_for(self, asset: str, keys: list[str]) -> list[list[str]]:
        """Contiguous stretches of the partition order: a single-run backfill takes a range."""
        if not keys:
            return []
        if keys == [UNPARTITIONED]:
            return [keys]
        order = self.instance.get_dynamic_partitions(self._partitions(asset).name)
        wanted = set(keys)
        stretches: list[list[str]] = []
        for position, key in enumerate(order):
            if key not in wanted:
                continue
            if stretches and order[position - 1] == stretches[-1][-1]:
                stretches[-1].append(key)
            else:
                stretches.append([key])
        return stretches

    def _execute(
        self, asset: str, keys: list[str], stage_tags: dict[str, str]
    ) -> dg.ExecuteInProcessResult:
        """One run of the stage; `stage_tags`: its claim, and the decision handed to its step."""
        tags = {"wan_lora/launched_by": "wan-lora run", PROCESS_TAG: this_process(), **stage_tags}
        if self.retraining:
            tags[RETRAIN_TAG] = ",".join(self.retraining)
        if keys != [UNPARTITIONED]:
            tags["dagster/asset_partition_range_start"] = keys[0]
            tags["dagster/asset_partition_range_end"] = keys[-1]
        if self.team:
            return execute_on_workers(self.instance, self.project.root, asset, tags, QUIET_CONSOLE)
        job = self.defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey(asset)])
        return job.execute_in_process(
            instance=self.instance,
            tags=tags,
            asset_selection=[dg.AssetKey(asset)],
            raise_on_error=False,
            run_config=QUIET_CONSOLE,
        )

    def status(self) -> dict[str, dict]:
        """Per asset: fresh, unsynced, missing and failed counts of clips, stills, checkpoints,
        and the names of those not fresh (status_report.py)."""
        release_dead_runs(self.instance)  # a killed command's run counts as ended, not running
        with no_cycle_collection():
            catalog = load_catalog(self.project)
            expectations = self.snapshot = Expectations(catalog)
            check_items_on_cores(expectations)
            return {
                asset: asset_status(self._states(asset, catalog, expectations)) for asset in STAGES
            }

    def _states(self, asset: str, catalog: Catalog, expectations: Expectations) -> dict[str, str]:
        states = {key: expectations.state(asset, key) for key in expectations.partitions(asset)}
        if any(state != "fresh" for state in states.values()):  # else no query of the log
            batches = self._batches(asset, catalog, list(states))
            failed = set(batches.items(self._failed_partitions(asset)))
            for key in failed.intersection(states):
                if states[key] != "fresh":
                    states[key] = "failed"
        return states

    def _failed_partitions(self, asset: str) -> set[str]:
        """Partitions whose latest attempt, in a run that ended in an error, made nothing (a run
        interrupted or killed failed nothing: what it did not make is not made yet)."""
        storage = self.instance.event_log_storage
        attempts = (
            storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                dg.AssetKey(asset)
            )
        )
        ended_in_error: dict[str, bool] = {}
        for run_id, _storage_id in attempts.values():
            if run_id not in ended_in_error:
                ended_in_error[run_id] = self._ended_in_error(run_id)
        return {key for key, (run_id, _) in attempts.items() if ended_in_error[run_id]}

    def _ended_in_error(self, run_id: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        if run is None or run.status != dg.DagsterRunStatus.FAILURE or run.tags.get(KILLED_TAG):
            return False
        failures = self.instance.all_logs(
            run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
        )
        return not interrupted_by([entry.dagster_event for entry in failures])


def _print_wait(asset: str):
    def say(taken: dict[str, Holder]) -> None:
        holders = sorted({holder.describe() for holder in taken.values()})
        print(
            f"{asset}: waiting for another run making {len(taken)} of its partitions "
            f"({'; '.join(holders)})",
            file=sys.stderr,
            flush=True,
        )

    return say


def _per_checkpoint(asset: str) -> bool:
    return SPECS[asset].partitioning is Partitioning.CHECKPOINTS
