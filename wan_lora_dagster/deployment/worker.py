"""`wan-lora worker`: a Celery worker of the team deployment, wrapping `dagster-celery worker`.

A worker serves one project (whose folder has the same path on every machine) and one queue:
`cpu` (cutting, captions that are files, manifests) or `gpu` (captioning, caches, training,
evaluation). It takes one batch at a time: a batch is one step of a run over a range of clips.

`dagster-celery worker start` runs `celery worker` as its child. Run as a plain child of
`wan-lora worker`, a `kill PID` of it left both running under init, taking new batches; the
command line runs them under supervise (parent_watch, a process group of their own): a SIGTERM
or SIGINT ends the group (a running batch gets a few seconds, then is killed), and a SIGKILLed
`wan-lora worker` has its watch end the group. A batch killed with its worker goes to another
worker once the worker's heartbeat has stopped for the visibility timeout (held_batches.py).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import yaml

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.instance.team import QUEUES, TeamSettings, team_settings
from wan_lora_dagster.project import Project


def worker_command(
    project: Project, queue: str, name: str | None = None, concurrency: int = 1
) -> tuple[list[str], dict[str, str]]:
    """The `dagster-celery worker start` command line and environment for this project."""
    from wan_lora_dagster.definitions import PROJECT_ENV
    from wan_lora_dagster.instance.project_instance import open_instance

    queues = queue.split(",")
    if not queues or any(name not in QUEUES for name in queues):
        raise ConfigError(f"--queue takes {', '.join(QUEUES)} or both (cpu,gpu), not '{queue}'")
    settings = team_settings(open_instance(project))
    if settings is None:
        raise ConfigError(
            f"{project.dagster_home / 'dagster.yaml'}: not a team deployment (no TeamRunLauncher "
            "with a broker); see the README, 'A team deployment'"
        )
    config = _write_celery_yaml(project.dagster_home / "celery.yaml", settings)
    argv = [
        str(Path(sys.executable).with_name("dagster-celery")),
        "worker",
        "start",
        "-A",
        "dagster_celery.app",
        "-y",
        str(config),
        "-i",
        "wan_lora_dagster.definitions",  # imported once, before the pool forks
        "-i",
        "wan_lora_dagster.deployment.held_batches",
        "-q",
        ",".join(queues),  # one -Q for celery, which keeps only the last of several
        "-n",
        name or f"{'-'.join(queues)}-{uuid.uuid4().hex[:6]}",
        "--",
        # One batch at a time runs in the worker process itself: a batch spreads over the
        # machine's GPUs in processes of its own, which a pool's daemon process may not start.
        *(["--pool=solo"] if concurrency == 1 else [f"--concurrency={concurrency}"]),
        "--without-gossip",
        "--without-mingle",
    ]
    env = {
        **os.environ,
        # dagster-celery starts `celery` by name: the one beside this Python
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "DAGSTER_HOME": str(project.dagster_home),
        PROJECT_ENV: str(project.root),
    }
    return argv, env


def _write_celery_yaml(path: Path, settings: TeamSettings) -> Path:
    path.write_text(yaml.safe_dump({"execution": {"config": settings.executor_config()}}))
    return path
