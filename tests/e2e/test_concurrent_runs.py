"""Two `wan-lora run` commands at once on one project: each partition is made by one of them."""

import json
import os
import subprocess
import sys
from collections import defaultdict

import dagster as dg
import pytest

from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.records import UNPARTITIONED
from wan_lora_dagster.project import open_project
from wan_lora_dagster.testing.processes import default_signals

pytestmark = pytest.mark.slow

STAGES = ("captions", "text_cache", "training_set", "dataset_report", "lora_checkpoints")
CLIP_STAGES = ("captions", "text_cache")  # their partitions are batches of clips


def _start_run(project):
    command = [sys.executable, "-m", "wan_lora_dagster.cli", "run", "--project", str(project)]
    command += ["--json", "--select", ",".join(STAGES)]
    return subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def _runs_per_partition(project, asset: str) -> dict[str, set[str]]:
    """Partition -> the runs that recorded a materialization of it."""
    instance = open_instance(open_project(project))
    makers = defaultdict(set)
    for record in instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records:
        makers[record.asset_materialization.partition or UNPARTITIONED].add(record.run_id)
    return makers


def _partitions_of(project, asset: str, items: list[str]) -> list[str]:
    """The partitions that hold `items` (a summary names clips; a clip stage runs batches)."""
    if asset not in CLIP_STAGES:
        return sorted(items)
    return sorted(load_catalog(open_project(project)).clip_batches.containing(items))


def test_two_runs_after_a_caption_edit_make_each_partition_once(demo_copy):
    edited = sorted((demo_copy / "captions").glob("*.txt"))[0]
    edited.write_text("a hand-edited caption of the demo clip", encoding="utf-8")
    before = {asset: _runs_per_partition(demo_copy, asset) for asset in STAGES}

    processes = [_start_run(demo_copy) for _ in range(2)]
    outputs = [process.communicate(timeout=900) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    summaries = [json.loads(out) for out, _ in outputs]

    for asset in STAGES:
        after = _runs_per_partition(demo_copy, asset)
        new_makers = {key: after[key] - before[asset].get(key, set()) for key in after}
        made = [stage[asset]["materialized"] for stage in summaries]
        elsewhere = [stage[asset]["made_elsewhere"] for stage in summaries]
        changed = {key for key, runs in new_makers.items() if runs}
        assert all(len(runs) <= 1 for runs in new_makers.values()), (asset, new_makers)
        # each changed partition is claimed as made by exactly one command
        made_partitions = _partitions_of(demo_copy, asset, made[0] + made[1])
        assert made_partitions == sorted(changed), (asset, made, changed)
        # what the other made is named so, or counted fresh when it was done before this one
        # looked at the stage
        for mine, theirs in ((0, 1), (1, 0)):
            assert set(elsewhere[mine]) <= set(made[theirs]), (asset, made, elsewhere)
    assert sum(len(s["captions"]["materialized"]) for s in summaries) == 1
    assert sum(len(s["lora_checkpoints"]["materialized"]) for s in summaries) == 2
