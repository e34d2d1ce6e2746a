"""Runs whose steps go to the team's workers: the graph must be rebuilt there from a pointer."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from wan_lora_dagster.dagster_internals import IMPLICIT_ASSET_JOB_NAME, ReconstructableRepository


def project_definitions() -> dg.Definitions:
    """The graph of the project in $WAN_LORA_PROJECT, built afresh wherever it is reconstructed
    (a worker sets it from `wan-lora worker --project`)."""
    from wan_lora_dagster.definitions import build_definitions, project_root

    return build_definitions(project_root())


def execute_on_workers(
    instance: dg.DagsterInstance,
    project_root: Path,
    asset: str,
    tags: dict[str, str],
    run_config: dict,
) -> dg.JobExecutionResult:
    """One run in this process whose steps the Celery executor hands to the workers.

    The project's folder must have the same path on every machine (shared storage).
    """
    from wan_lora_dagster.definitions import PROJECT_ENV

    os.environ[PROJECT_ENV] = str(project_root)
    job = ReconstructableRepository.for_module(
        __name__, project_definitions.__name__
    ).get_reconstructable_job(IMPLICIT_ASSET_JOB_NAME)
    return dg.execute_job(
        job,
        instance,
        run_config=run_config,
        tags=tags,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(asset)],
    )
