"""The demo graph on a real team deployment: PostgreSQL, Redis, two Celery worker processes."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from wan_lora_dagster.assets.partitioned import CLIP_PARTITIONS
from wan_lora_dagster.project import open_project
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.scaffold import create_demo_project
from wan_lora_dagster.testing.team import TASK, keep_ranges, open_instance_of

# Up to the fan-in: every per-clip stage and the manifest, the stages whose records the
# deployment must reproduce exactly (training and eval take minutes of the suite's 10 on a CPU).
GRAPH = "+training_set"
COMPARED = ("clips", "captions", "text_cache", "latent_cache", "training_set")
KILL_WAIT_SECONDS = 120


def records(project: Path) -> dict[str, dict[str, dict]]:
    """What our records say was made: asset -> partition -> record."""
    found: dict[str, dict[str, dict]] = {}
    for path in sorted((project / "out" / "records").glob("*/*.json")):
        found.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return found


def comparable(project: Path) -> dict:
    """Clips, caption texts, cache file names and data versions, per asset and partition."""
    picked = {}
    found = json.loads(json.dumps(records(project)).replace(str(project), "<project>"))
    for asset, by_key in found.items():
        if asset not in COMPARED:
            continue
        picked[asset] = {
            key: {
                name: record.get(name)
                for name in ("data_version", "text", "file", "sections", "num_frames", "path")
            }
            for key, record in by_key.items()
        }
    return picked


def made_by_the_graph(made_contents, project: Path) -> dict[str, object]:
    """Every clip, caption and cache file's contents (`made_contents`: bytes, or a cache's
    tensors and header fields): the same inputs give the same bytes however the work was batched
    or spread over workers."""
    return {
        name: contents
        for name, contents in made_contents(project).items()
        if name.startswith(("out/clips/", "captions/", "out/cache/"))
    }


def synced_state(runner: ProjectRunner) -> dict:
    """What sync and status leave in the instance: partitions, observed versions, counts."""
    runner.sync()
    storage = runner.instance.event_log_storage
    observed = {
        asset: storage.get_latest_tags_by_partition(
            dg.AssetKey(asset), dg.DagsterEventType.ASSET_OBSERVATION, ["dagster/data_version"]
        )
        for asset in ("films", "clip_ranges", "caption_files")
    }
    partitions = {name: runner.instance.get_dynamic_partitions(name) for name in ("clips",)}
    return {"status": runner.status(), "observed": observed, "partitions": partitions}


def leftovers(project: Path) -> list[Path]:
    """Half-written files: the temporaries our writers rename into place."""
    out = project / "out"
    return [
        path
        for path in out.rglob(".*")
        if path.is_file() and (".partial" in path.name or path.suffix == ".tmp")
    ]


@pytest.mark.slow
def test_graph_through_two_workers_matches_in_process(team_factory, made_contents, tmp_path):
    """Two worker processes, each splitting captioning and caches over two CPU "devices", make
    what one process makes: the same clips, captions, cache files and data versions."""
    team = team_factory()
    local = create_demo_project(tmp_path / "local" / "demo")
    for project in (team.project, local):
        keep_ranges(project, 3)  # fewer clips: the suite's time matters more
    # each worker a machine with two "GPUs": its GPU steps split over two device processes
    team.start_workers("alpha", "beta", env={"WAN_LORA_DEVICES": "cpu,cpu"})

    distributed = ProjectRunner(open_project(team.project)).run(GRAPH)
    in_process = ProjectRunner(open_project(local)).run(GRAPH)

    assert {a: s.materialized for a, s in distributed.items()} == {
        a: s.materialized for a, s in in_process.items()
    }
    assert len(distributed["clips"].materialized) == 3
    assert comparable(team.project) == comparable(local)
    assert made_by_the_graph(made_contents, team.project) == made_by_the_graph(made_contents, local)
    # a batch of 3 clips: each per-clip stage made its 3 clips in one task, on a worker
    runs = open_instance_of(team.project).get_runs()
    clip_runs = [run for run in runs if run.asset_selection == {dg.AssetKey("clips")}]
    assert len(clip_runs) == 1
    worker_names = {worker.name for worker in team.workers}
    assert _workers_that_ran(team.project) <= worker_names

    assert synced_state(ProjectRunner(open_project(team.project))) == synced_state(
        ProjectRunner(open_project(local))
    )


def _workers_that_ran(project: Path) -> set[str]:
    instance = open_instance_of(project)
    names = set()
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            data = record.dagster_event.engine_event_data if record.dagster_event else None
            for key, value in (data.metadata if data else {}).items():
                if key == "Celery worker":
                    names.add(value.value.split("@")[0])
    return names


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_nothing(team_factory):
    """SIGKILL the worker cutting the first batch once it has cut one clip of five: the other
    worker takes the batch when its visibility timeout passes, and every clip is made once."""
    team = team_factory(visibility_timeout_s=30)
    workers = team.start_workers("alpha", "beta")
    summary: dict = {}
    runner = ProjectRunner(open_project(team.project))
    runner.sync()
    first_clip = runner.instance.get_dynamic_partitions(CLIP_PARTITIONS.name)[0]  # its name
    run = threading.Thread(target=lambda: summary.update(runner.run("clips")))
    run.start()
    record = team.project / "out" / "records" / "clips" / f"{first_clip}.json"
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while not record.exists():
        assert time.monotonic() < deadline, "no clip made in time"
        time.sleep(0.02)
    while not any(TASK.search(worker.text()) for worker in workers):
        assert time.monotonic() < deadline, "no worker logged the batch it took"
        time.sleep(0.02)
    busy, other = workers if TASK.search(workers[0].text()) else workers[::-1]
    busy.kill()
    assert " succeeded in " not in busy.text(), "the batch ended before the kill"
    lost_batch = TASK.search(busy.text()).group(1)
    run.join(timeout=KILL_WAIT_SECONDS * 3)
    assert not run.is_alive(), f"the run never finished:\n{other.text()[-3000:]}"

    assert len(summary["clips"].materialized) == 5
    assert summary["clips"].failed == []
    assert f"execute_plan[{lost_batch}] succeeded" in other.text()
    instance = open_instance_of(team.project)
    made = Counter(
        event.partition_key
        for event in instance.fetch_materializations(dg.AssetKey("clips"), limit=100).records
    )
    # one step's events per clip: its Output's and the one carrying the clip's own data version
    assert made == dict.fromkeys(runner.instance.get_dynamic_partitions(CLIP_PARTITIONS.name), 2)
    assert leftovers(team.project) == []
