"""The team deployment's settings: they live in the project's `.dagster/dagster.yaml`.

Dagster refuses unknown keys in dagster.yaml, so the team's settings ride on its run launcher:
deployment/team.py's `TeamRunLauncher` (the name dagster.yaml gives) carries the broker's URL and
the few Celery settings every machine must agree on. Assets and the executor read them here,
below the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
QUEUES = (CPU_QUEUE, GPU_QUEUE)
# A batch whose worker vanished (machine lost, process SIGKILLed) goes back to the queue this
# long after the worker's last heartbeat (deployment/held_batches.py: a live worker renews the
# batches it holds, so a batch may run for hours). Short, so that a lost batch is soon made
# elsewhere; long enough that a worker on a loaded machine does not miss every beat in it.
DEFAULT_VISIBILITY_TIMEOUT_S = 120
# Batch runs a `wan-lora run` keeps in flight at once: enough to keep this many workers busy.
# Each waits for its batch in a process of its own (about 60 MB not shared with the command).
DEFAULT_RUNS_IN_FLIGHT = 8


@dataclass(frozen=True)
class TeamSettings:
    broker: str
    backend: str
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S
    runs_in_flight: int = DEFAULT_RUNS_IN_FLIGHT

    def celery_config(self) -> dict[str, Any]:
        """What the submitting process and every worker give Celery.

        A batch is acknowledged only once done (`acks_late`), and given back when the process
        running it dies (`reject_on_worker_lost`) or when its worker stops beating (the
        visibility timeout, see deployment/held_batches.py); each worker reserves one batch at
        a time, so an idle worker takes the next one instead of a busy worker hoarding it.
        """
        return {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": CPU_QUEUE,
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": {
                "visibility_timeout": self.visibility_timeout_s,
                # how often a live worker looks for batches whose worker vanished
                "unacked_restore_interval": max(1, min(60, self.visibility_timeout_s // 10)),
                "unacked_restore_throttle": 1,
            },
            "result_backend_transport_options": {"visibility_timeout": self.visibility_timeout_s},
        }

    def executor_config(self) -> dict[str, Any]:
        """dagster-celery's executor config block (also what its worker reads with -y)."""
        return {
            "broker": self.broker,
            "backend": self.backend,
            "config_source": self.celery_config(),
        }


def team_settings(instance: dg.DagsterInstance) -> TeamSettings | None:
    """The team deployment's settings, or None for a project run on one machine (whose run
    launcher is not deployment/team.py's TeamRunLauncher, so carries none)."""
    settings = getattr(instance.run_launcher, "settings", None)
    return settings if isinstance(settings, TeamSettings) else None
