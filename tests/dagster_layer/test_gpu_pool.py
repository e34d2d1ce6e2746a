"""The `gpu` pool counts this machine's GPUs, unless someone set its limit by hand."""

import os
import subprocess
import sys
from pathlib import Path

from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.project import open_project
from wan_lora_dagster.scaffold import init_project

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def gpu_limit(project) -> int:
    return open_instance(project).event_log_storage.get_concurrency_info("gpu").slot_count


def set_by_hand(project, limit: int) -> None:
    """What the README tells a user to run: Dagster's own command on the project's instance."""
    environment = {**os.environ, "DAGSTER_HOME": str(project.dagster_home)}
    command = [DAGSTER, "instance", "concurrency", "set", "gpu", str(limit)]
    subprocess.run(command, env=environment, check=True, capture_output=True)


def test_a_hand_set_gpu_limit_is_kept_and_ours_follows_the_gpus(tmp_path, monkeypatch):
    project = open_project(init_project(tmp_path / "solo"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # open_instance points it at the project
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert gpu_limit(project) == 2  # a new pool: one slot per GPU

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert gpu_limit(project) == 3  # our own count follows the machine

    set_by_hand(project, 1)  # e.g. two GPUs kept for something else
    assert gpu_limit(project) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpu_limit(project) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert gpu_limit(project) == 1, "a hand-set limit is never overridden"
