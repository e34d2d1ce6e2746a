"""A `wan-lora worker` told to stop stops, with every process under it; a batch its death left
unfinished goes to another worker once its heartbeat has stopped, and not while it beats."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import psutil
import pytest
import redis

from wan_lora_dagster.project import open_project
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.testing.team import (
    TASK,
    Team,
    Worker,
    gated_ffmpeg,
    keep_ranges,
    open_instance_of,
    wait_for,
)

STOP_SECONDS = 120  # an upper bound on a stop's grace periods, never waited out on success
RUN_SECONDS = 600
HANDOVER_S = 10  # the visibility timeout of these tests: seconds without a heartbeat


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_stopped_worker_leaves_no_process(team_factory, number):
    """`kill PID`, Ctrl-C or `kill -9 PID` of `wan-lora worker` alone (not its group): its
    dagster-celery and celery processes end with it."""
    team = team_factory()
    (worker,) = team.start_workers(f"stop-{number.name.lower()}")
    processes = worker.processes()
    assert any("celery" in " ".join(process.cmdline()) for process in processes[1:])

    os.kill(worker.process.pid, number)

    _, alive = psutil.wait_procs(processes, timeout=STOP_SECONDS)
    assert alive == [], f"still running after {number.name}: {alive}"


@pytest.mark.slow
def test_a_batch_of_a_killed_worker_is_made_by_another(team_factory, tmp_path):
    """`kill -9` of the `wan-lora worker` cutting a batch: its processes end, and the batch
    goes to the next worker once HANDOVER_S have passed without its heartbeat."""
    team = team_factory(visibility_timeout_s=HANDOVER_S)
    keep_ranges(team.project, 2)
    gate = tmp_path / "gate"
    gate.mkdir()
    alpha = _start_gated(team, tmp_path, gate, "alpha")
    summary: dict = {}
    run = _run_clips(team.project, summary)
    # alpha's cut waits at the gate until a second worker cuts: the batch cannot end before
    wait_for(lambda: (gate / "alpha.calls").exists(), "alpha to start cutting", RUN_SECONDS)
    processes = alpha.processes()

    os.kill(alpha.process.pid, signal.SIGKILL)

    _, alive = psutil.wait_procs(processes, timeout=STOP_SECONDS)
    assert alive == [], f"still running after SIGKILL: {alive}"
    _start_gated(team, tmp_path, gate, "beta")
    run.join(timeout=RUN_SECONDS)
    assert not run.is_alive(), f"the run never finished:\n{team.workers[-1].text()[-3000:]}"
    assert summary["clips"].failed == []
    assert len(summary["clips"].materialized) == 2
    lost_batch = TASK.search(alpha.text()).group(1)
    assert f"execute_plan[{lost_batch}] succeeded" in team.workers[-1].text()
    assert " succeeded in " not in alpha.text()
    assert _cuts(gate)["beta"] == 2  # every clip cut again: alpha's cuts never passed its gate


@pytest.mark.slow
def test_a_batch_longer_than_the_timeout_stays_with_its_live_worker(team_factory, tmp_path):
    """A batch held twice HANDOVER_S and more by a live worker, while another worker sweeps for
    lost batches every second: it is never handed out again, and made once."""
    team = team_factory(visibility_timeout_s=HANDOVER_S)
    keep_ranges(team.project, 2)
    gate = tmp_path / "gate"
    gate.mkdir()
    workers = [_start_gated(team, tmp_path, gate, name) for name in ("alpha", "beta")]
    summary: dict = {}
    run = _run_clips(team.project, summary)
    wait_for(lambda: any(gate.glob("*.calls")), "a worker to start cutting", RUN_SECONDS)
    (calls,) = gate.glob("*.calls")
    holder, other = workers if calls.name == "alpha.calls" else workers[::-1]
    broker = redis.Redis.from_url(open_instance_of(team.project).run_launcher.settings.broker)
    (delivered,) = _held_since(broker)
    # a beat seen after the batch would have gone back twice over, had its worker not beaten;
    # or, sooner, the other worker taking the batch
    wait_for(
        lambda: (
            max(_held_since(broker), default=0) > delivered + 2 * HANDOVER_S
            or TASK.search(other.text())
        ),
        "the holder to renew its batch",
        RUN_SECONDS,
    )
    assert TASK.search(other.text()) is None, "the batch was handed out twice"
    (gate / "open").touch()  # the holder's cuts go on

    run.join(timeout=RUN_SECONDS)
    assert not run.is_alive(), "the run never finished"
    assert summary["clips"].failed == []
    assert TASK.search(other.text()) is None, "the batch was handed out twice"
    assert _cuts(gate) == {holder.name: 2}


def _start_gated(team: Team, tmp_path: Path, gate: Path, name: str) -> Worker:
    """A worker whose cuts wait until a second file (another worker's, or `open`) is in gate."""
    shim = tmp_path / "shim"
    if not shim.exists():
        gated_ffmpeg(shim, gate)
    environment = {
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "FFMPEG_GATE": str(gate / name),
    }
    (worker,) = team.start_workers(name, env=environment)
    return worker


def _run_clips(project: Path, summary: dict) -> threading.Thread:
    runner = ProjectRunner(open_project(project))
    run = threading.Thread(target=lambda: summary.update(runner.run("clips")))
    run.start()
    return run


def _cuts(gate: Path) -> dict[str, int]:
    """How many cuts each worker started, from its gate's call log."""
    return {
        calls.name.removesuffix(".calls"): len(calls.read_text().splitlines())
        for calls in gate.glob("*.calls")
    }


def _held_since(broker: redis.Redis) -> list[float]:
    """When each batch held now was delivered or last renewed (kombu's `unacked_index`)."""
    return [score for _, score in broker.zrange("unacked_index", 0, -1, withscores=True)]
