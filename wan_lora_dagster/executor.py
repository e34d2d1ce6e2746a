"""The code location's executor: steps in local processes, or on the team's Celery workers.

Which one is decided per run by the instance it runs on, so the same Definitions serve a project
on one machine and a team deployment, from the CLI and from the UI alike.
"""

from __future__ import annotations

import dagster as dg

from wan_lora_dagster.dagster_internals import RetryMode
from wan_lora_dagster.instance.team import team_settings


@dg.executor(
    name="wan_lora",
    config_schema=dg.multiprocess_executor.config_schema,
    requirements=dg.multiple_process_executor_requirements(),
)
def project_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Celery (a task per step, on the queue of its `dagster-celery/queue` tag, `cpu` by default)
    where the instance is a team deployment; else Dagster's multiprocess executor."""
    settings = team_settings(init_context.instance)
    if settings is None:
        return dg.multiprocess_executor.executor_creation_fn(init_context)
    from dagster_celery.executor import CeleryExecutor  # Celery only in a team deployment

    return CeleryExecutor(retries=RetryMode(RetryMode.DISABLED), **settings.executor_config())
