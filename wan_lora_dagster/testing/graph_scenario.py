"""The musubi engine driven through the whole graph by `wan-lora run`, as a user drives it.

Shared by the CPU test (the FAKE musubi-tuner clone) and the GPU test (the real musubi-tuner with
real-shape weights): the demo project switched to `engine = "musubi"`, a `wan-lora run` that is
cancelled once its first checkpoint is recorded, and a second `wan-lora run` that resumes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.project import open_project
from wan_lora_dagster.project_builder import DEMO_DATASET, demo_recipe, write_recipe
from wan_lora_dagster.scaffold import create_demo_project
from wan_lora_dagster.testing.musubi_fixtures import make_fake_musubi, make_weights
from wan_lora_dagster.testing.processes import default_signals

CANCEL_SECONDS = 10.0


def musubi_demo_project(
    root: Path, training: dict, num_repeats: int = 1, made: Path | None = None
) -> Path:
    """The demo project (synthetic film, tiny captioner) training with the musubi engine.

    training: the `[training]` table, in place of the demo's; eval keeps one strength (1.0).
    made: a made demo project to start from (a copy of it: its clips and captions stay).
    """
    if made is None:
        create_demo_project(root)
    else:
        shutil.copytree(made, root, symlinks=True)
    settings = demo_recipe(
        datasets=[{**DEMO_DATASET, "num_repeats": num_repeats}], eval={"strengths": [1.0]}
    )
    write_recipe(root, **{**settings, "training": training})
    return root


def fake_musubi_demo_project(root: Path, epochs: int, made: Path | None = None) -> Path:
    """The musubi demo project on the FAKE musubi-tuner clone, a checkpoint every epoch."""
    training = {
        "engine": "musubi",
        "musubi_dir": str(make_fake_musubi(root / "fake-musubi-tuner")),
        **make_weights(root / "weights"),
        "network_dim": 4,
        "network_alpha": 4,
        "max_train_epochs": epochs,
        "save_every_n_epochs": 1,
    }
    return musubi_demo_project(root / "demo", training, made=made)


@dataclass
class CliRun:
    """A `wan-lora run` in its own session, its output kept."""

    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, project: Path, environment: dict[str, str] | None = None) -> CliRun:
        command = [sys.executable, "-m", "wan_lora_dagster.cli", "run", "--project", str(project)]
        process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=default_signals,
        )
        return cls(process)

    def finish(self, timeout: float) -> int:
        out, _ = self.process.communicate(timeout=timeout)
        self.output.append(out)
        return self.process.returncode

    @property
    def text(self) -> str:
        return "".join(self.output)


def wait_for_checkpoint_event(
    project: Path, run: CliRun, timeout: float, instance: dg.DagsterInstance | None = None
) -> dict[str, dict]:
    """The checkpoint partitions in Dagster, once the running training has recorded one.

    `instance`: the project's, opened before the run where it existed already, so that the
    wait costs one query a poll; else it is opened once the run has written a checkpoint's
    record (two processes creating its tables at once collide)."""
    deadline = time.monotonic() + timeout
    records = project / "out" / "records" / "lora_checkpoints"
    while time.monotonic() < deadline:
        if instance is None and any(records.glob("*.json")):
            instance = project_instance(project)
        if instance is not None and (events := _checkpoint_events_in(instance)):
            return events
        if run.process.poll() is not None:
            run.finish(timeout=5)
            raise AssertionError(f"wan-lora run ended ({run.process.returncode}):\n{run.text}")
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint recorded within {timeout} s")


def interrupt(run: CliRun, number: int = signal.SIGINT) -> tuple[int, float]:
    """Ctrl-C (or Dagster's SIGTERM) to the command: (exit code, seconds until it exited)."""
    started = time.monotonic()
    run.process.send_signal(number)
    code = run.finish(timeout=60)
    return code, time.monotonic() - started


def project_instance(project: Path) -> dg.DagsterInstance:
    return open_instance(open_project(project))


def checkpoint_events(project: Path) -> dict[str, dict]:
    """Per lora_checkpoints partition, the metadata of its latest materialization in Dagster."""
    return _checkpoint_events_in(project_instance(project))


def _checkpoint_events_in(instance: dg.DagsterInstance) -> dict[str, dict]:
    records = instance.fetch_materializations(dg.AssetKey("lora_checkpoints"), limit=100).records
    latest: dict[str, dict] = {}
    for record in records:  # newest first
        materialization = record.asset_materialization
        latest.setdefault(
            materialization.partition,
            {key: value.value for key, value in materialization.metadata.items()},
        )
    return latest


def checkpoint_digests(project: Path) -> dict[str, str]:
    """LoRA file name -> sha256, to show that no checkpoint is ever rewritten."""
    folder = project / "out" / "checkpoints"
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.glob("*.safetensors")
    }


def check_resumed(project: Path, before: dict[str, str], events: dict[str, dict], epochs: int):
    """The resumed training: a checkpoint per epoch with steps going on from the cancelled run's,
    none of the files saved `before` it rewritten, each file's header naming its training set."""
    keys = sorted(events)
    train_id = keys[0].rsplit("-", 1)[0]
    assert keys == [f"{train_id}-e{epoch:04d}" for epoch in range(1, epochs + 1)]
    steps = [events[key]["step"] for key in keys]
    assert steps == [steps[0] * epoch for epoch in range(1, epochs + 1)], "counters restarted"
    now = checkpoint_digests(project)
    assert {name: now[name] for name in before} == before, "a checkpoint was rewritten"
    for metadata in events.values():
        header = read_lora_header(project / metadata["lora_file"])
        assert header["wan_lora.training_set"] == metadata["training_set"]
        assert header["ss_steps"] == str(metadata["step"])
