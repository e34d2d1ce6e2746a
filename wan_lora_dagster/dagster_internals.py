"""Every use of Dagster's private modules and methods, in one place (checked by `lint-imports`).

Dagster may change these in any release: after an upgrade, this file is the one to check. Each
name says why no public API serves.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

# The job Dagster builds of all of a Definitions' assets (`__ASSET_JOB`): a team deployment's
# worker rebuilds the graph and runs its steps from this job. Public only as
# `Definitions.get_implicit_global_asset_job_def()`, which needs the Definitions already built,
# where the reconstructable pointer below needs the name before.
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

# A pointer to a function that returns Definitions, which every Celery worker follows to build
# the graph again: `dg.reconstructable` points to a job-returning function, in a repository of
# its own, not to the code location's Definitions.
from dagster._core.definitions.reconstruct import ReconstructableRepository

# Observations written many at once to SQLite (instance/observation_log.py): Dagster builds an
# observation's event data only inside `report_runless_asset_event`, which stores one at a time.
from dagster._core.events import AssetObservationData

# Dagster's local compute logs, kept by instance/compute_logs.py but copied to the terminal its
# own way (no helper process that Ctrl-C reaches): the manager, its log keys' types and the
# helpers of its capture are exported nowhere public.
from dagster._core.execution.compute_logs import redirect_to_file

# dagster-celery's executor takes a RetryMode; only its `celery_executor` definition (which we
# cannot pick per instance) builds one from config.
from dagster._core.execution.retries import RetryMode

# A project's instance opened with that manager where its dagster.yaml names none
# (instance/project_instance.py): `DagsterInstance.from_config` takes no overrides.
from dagster._core.instance.ref import InstanceRef

# (compute logs, as above)
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType

# The storages' classes, to tell a project's SQLite instance from a shared PostgreSQL one: no
# public API names an instance's storage kind.
from dagster._core.storage.event_log import SqliteEventLogStorage

# (compute logs, as above)
from dagster._core.storage.local_compute_log_manager import (
    IO_TYPE_EXTENSION,
    LocalComputeLogManager,
)

# (the storages' classes, as above)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

# A run launcher configured in dagster.yaml is built with this (its `inst_data`), which Dagster
# exports nowhere public.
from dagster._serdes import ConfigurableClassData

# (compute logs, as above)
from dagster._utils import ensure_file, touch_file

# How Dagster's run worker turns a Ctrl-C into an orderly stop of its run; a process that
# executes a run (deployment/batch_runs.py) must do the same, and no public API does it.
from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

__all__ = [
    "IMPLICIT_ASSET_JOB_NAME",
    "IO_TYPE_EXTENSION",
    "AssetObservationData",
    "CapturedLogContext",
    "ComputeIOType",
    "ConfigurableClassData",
    "InstanceRef",
    "LocalComputeLogManager",
    "ReconstructableRepository",
    "RetryMode",
    "SqliteEventLogStorage",
    "SqliteRunStorage",
    "capture_interrupts",
    "check_captured_interrupt",
    "ensure_file",
    "redirect_to_file",
    "store_events_at_once",
    "touch_file",
]


def store_events_at_once(
    storage: SqliteEventLogStorage, run_id: str, entries: Sequence[dg.EventLogEntry]
) -> None:
    """What SqliteEventLogStorage.store_event does per event, once for all of a run's events:
    one transaction per database. Its asset index is written by private methods only
    (`_store_asset_event_tags`, `_store_asset_event`), which `store_event` calls per event."""
    with storage.run_connection(run_id) as connection:
        for entry in entries:
            connection.execute(storage.prepare_insert_event(entry))
    with storage.index_transaction() as connection:
        ids = [
            connection.execute(storage.prepare_insert_event(entry)).inserted_primary_key[0]
            for entry in entries
        ]
        storage._store_asset_event_tags(connection, entries, ids)
        for entry, event_id in zip(entries, ids, strict=True):
            storage._store_asset_event(connection, entry, event_id)
