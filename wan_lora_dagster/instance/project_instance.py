"""A project's own Dagster instance under .dagster/, and the `gpu` pool it holds.

The command line, the runner, the UI's set-up and the team workers open the instance here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from importlib import resources
from pathlib import Path

import dagster as dg
import yaml

from wan_lora_dagster.dagster_internals import InstanceRef
from wan_lora_dagster.engines.devices import gpu_count
from wan_lora_dagster.instance.compute_logs import compute_logs_config
from wan_lora_dagster.instance.team import team_settings
from wan_lora_dagster.project import Project

GPU_POOL_KEY = "wan_lora/gpu_pool_slots"  # the `gpu` limit we set, to tell it from a hand-set one


def open_instance(project: Project) -> dg.DagsterInstance:
    """The project's instance under .dagster/, created with our dagster.yaml on first use.

    Opening a new instance creates its SQLite tables; two commands doing that at once (`wan-lora
    ui` and `wan-lora run` on a fresh project) collide ("table jobs already exists"), so opening
    is serialized by a lock file beside it.
    """
    home = project.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with open(home / ".open.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = home / "dagster.yaml"
        if not config.exists():
            template = resources.files("wan_lora_dagster") / "templates" / "dagster.yaml"
            shutil.copyfile(str(template), config)
        instance = dg.DagsterInstance.from_ref(
            InstanceRef.from_dir(str(home), overrides=_our_compute_logs(config, home))
        )
        if team_settings(instance) is None:
            count_gpus_in_pool(instance)
        return instance


def _our_compute_logs(config: Path, home: Path) -> dict:
    """Our compute log manager (compute_logs.py: Ctrl-C without tracebacks), unless the
    dagster.yaml names one (a team's, on shared storage); instances made before it get it too."""
    if "compute_logs" in (yaml.safe_load(config.read_text()) or {}):
        return {}
    return {"compute_logs": compute_logs_config(home)}


def count_gpus_in_pool(instance: dg.DagsterInstance) -> None:
    """The `gpu` pool holds a slot per GPU of this machine (one on a machine without one).

    Only a limit we set is ours to change: one set by hand (`dagster instance concurrency set
    gpu N`) stays. The count we set is kept beside it, so a later open can tell the two apart.
    """
    slots = max(1, gpu_count())
    info = instance.event_log_storage.get_concurrency_info("gpu")
    ours = instance.run_storage.get_cursor_values({GPU_POOL_KEY}).get(GPU_POOL_KEY)
    # a pool set before we kept the count: ours if it is the count we would set
    if not info.using_default_limit and str(info.slot_count) != (ours or str(slots)):
        return
    if info.using_default_limit or info.slot_count != slots:
        instance.event_log_storage.set_concurrency_slots("gpu", slots)
    if ours != str(slots):
        instance.run_storage.set_cursor_values({GPU_POOL_KEY: str(slots)})
