"""How runs share a team deployment: one `wan-lora run` keeps every worker busy."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from wan_lora_dagster.assets.partitioned import CLIP_PARTITIONS
from wan_lora_dagster.dagster_internals import IMPLICIT_ASSET_JOB_NAME
from wan_lora_dagster.definitions import PROJECT_ENV
from wan_lora_dagster.project import open_project
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.testing.processes import default_signals, stop_group
from wan_lora_dagster.testing.servers import free_port
from wan_lora_dagster.testing.team import (
    Team,
    gated_ffmpeg,
    keep_ranges,
    open_instance_of,
    wait_for,
)

WAN_LORA = [sys.executable, "-m", "wan_lora_dagster.cli"]
FINISHED = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)


def start_gated_workers(team: Team, tmp_path: Path, *names: str) -> Path:
    gate = tmp_path / "gate"
    gate.mkdir()
    shim = gated_ffmpeg(tmp_path / "shim", gate)
    for name in names:
        environment = {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
        team.start_workers(name, env={**environment, "FFMPEG_GATE": str(gate / name)})
    return gate


def add_film(project: Path, name: str, ranges: int) -> None:
    """A second film (the demo's, again) with its own ranges: the clips of a new film start a
    batch of their own."""
    os.link(project / "films" / "shapes.mp4", project / "films" / f"{name}.mp4")
    lines = (project / "ranges" / "shapes.txt").read_text().splitlines()
    (project / "ranges" / f"{name}.txt").write_text("\n".join(lines[: ranges + 1]) + "\n")


def step_span(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the run's step started and ended, as the worker running it recorded."""
    records = instance.all_logs(run_id)
    times = {
        record.dagster_event.event_type: record.timestamp
        for record in records
        if record.dagster_event is not None
    }
    return times[dg.DagsterEventType.STEP_START], times[dg.DagsterEventType.STEP_SUCCESS]


@pytest.mark.slow
def test_one_command_keeps_both_workers_busy(team_factory, tmp_path):
    """Two batches of `clips` (one per film), two workers: the batches are made at the same time,
    one on each worker, as the instance's run and step records show."""
    team = team_factory()
    keep_ranges(team.project, 2)
    add_film(team.project, "other", 1)
    start_gated_workers(team, tmp_path, "alpha", "beta")

    summary = ProjectRunner(open_project(team.project)).run("clips")

    assert len(summary["clips"].materialized) == 3
    assert summary["clips"].failed == []
    instance = open_instance_of(team.project)
    runs = [
        record
        for record in instance.get_run_records()
        if record.dagster_run.asset_selection == {dg.AssetKey("clips")}
    ]
    assert len(runs) == 2, "a run per batch"
    first, second = runs
    assert first.start_time < second.end_time and second.start_time < first.end_time
    (start_a, end_a), (start_b, end_b) = (step_span(instance, r.dagster_run.run_id) for r in runs)
    assert start_a < end_b and start_b < end_a, "the batches were made one after the other"
    workers = {worker_of(instance, record.dagster_run.run_id) for record in runs}
    assert workers == {"alpha", "beta"}


def worker_of(instance: dg.DagsterInstance, run_id: str) -> str:
    """The Celery worker that executed the run's step (dagster-celery logs its name)."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        for key, value in record.dagster_event.engine_event_data.metadata.items():
            if key == "Celery worker":
                return value.value.split("@")[0]
    raise AssertionError(f"run {run_id}: no Celery worker named in its events")


@contextlib.contextmanager
def webserver(project: Path, log: Path) -> Iterator[int]:
    """The real `dagster-webserver` of the project's code location (what `wan-lora ui` starts
    inside `dagster dev`); yields its port once it answers."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("dagster-webserver"))]
    command += ["-m", "wan_lora_dagster.definitions", "-h", "127.0.0.1", "-p", str(port)]
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(project / ".dagster"),
        PROJECT_ENV: str(project),
    }
    with open(log, "w") as output:
        server = subprocess.Popen(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_signals,
        )
    try:
        wait_for(lambda: _answers(port, server, log), "the webserver to answer")
        yield port
    finally:
        stop_group(server)


def _answers(port: int, server: subprocess.Popen, log: Path) -> bool:
    assert server.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).close()
    except OSError:
        return False
    return True


def launch_at_once(project: Path) -> None:
    """The webserver launches a run at once instead of queuing it for `dagster dev`'s daemon,
    which would also start runs of its own (the automation sensor) and so blur who made what."""
    config = project / ".dagster" / "dagster.yaml"
    coordinator = "module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator"
    config.write_text(config.read_text() + f"run_coordinator:\n  {coordinator}\n")


@pytest.mark.slow
def test_a_ui_run_and_the_command_never_make_a_partition_twice(team_factory, tmp_path):
    """A run of `clips` launched through the webserver's GraphQL API (what the UI's Materialize
    sends) is cutting when `wan-lora run` starts: the command waits for the UI run's claim,
    then finds its work done. Every clip is cut once, every partition materialized by one run."""
    team = team_factory()
    launch_at_once(team.project)
    keep_ranges(team.project, 2)
    gate = start_gated_workers(team, tmp_path, "alpha", "beta")
    runner = ProjectRunner(open_project(team.project))
    runner.sync()
    (batch,) = runner.instance.get_dynamic_partitions(CLIP_PARTITIONS.name)

    with webserver(team.project, tmp_path / "webserver.log") as port:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        ui_run = client.submit_job_execution(
            IMPLICIT_ASSET_JOB_NAME, tags={"dagster/partition": batch}, asset_selection=["clips"]
        )
        wait_for(lambda: any(gate.glob("*.calls")), "the UI run's step to start cutting")
        command = subprocess.Popen(
            [*WAN_LORA, "run", "--project", str(team.project), "--select", "clips"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_signals,
        )
        waiting = next((line for line in command.stderr if "waiting" in line), "no wait")
        assert "clips: waiting for another run making 1 of its partitions" in waiting
        assert f"run {ui_run[:8]}" in waiting
        (gate / "open").touch()  # the UI run's cuts go on
        stdout, stderr = command.communicate(timeout=300)
        wait_for(lambda: client.get_run_status(ui_run) in FINISHED, "the UI run to finish")

    assert command.returncode == 0, stderr
    assert "2 made by another run" in stdout
    instance = open_instance_of(team.project)
    assert instance.get_run_by_id(ui_run).status == dg.DagsterRunStatus.SUCCESS
    cuts = Counter(
        line.split()[-1]
        for calls in gate.glob("*.calls")
        for line in calls.read_text().splitlines()
    )
    assert sorted(cuts.values()) == [1, 1], cuts
    materializations = instance.fetch_materializations(dg.AssetKey("clips"), limit=100).records
    assert {record.run_id for record in materializations} == {ui_run}
    assert len(materializations) == 2  # the step's Output and the batch's own data version
    assert len(list((team.project / "out" / "records" / "clips").glob("*.json"))) == 2
