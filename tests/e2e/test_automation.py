"""Automation follows data versions, and the schedule retrains only on a changed training set."""

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from wan_lora_dagster.project import open_project
from wan_lora_dagster.resources import build_resources
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.testing.commands import run_json


@pytest.fixture
def runner(demo_copy) -> ProjectRunner:
    runner = ProjectRunner(open_project(demo_copy))
    runner.sync()
    return runner


def requested(runner: ProjectRunner, cursor=None):
    result = dg.evaluate_automation_conditions(
        defs=runner.defs, instance=runner.instance, cursor=cursor
    )
    asked = {
        key.to_user_string(): sorted(result.get_requested_partitions(key))
        for key in runner.graph.get_all_asset_keys()
        if result.get_num_requested(key)
    }
    return asked, result.cursor


def batch_of_drift(runner: ProjectRunner) -> str:
    """The partition (a batch of clips) that holds the demo's clip `drift`."""
    return runner.sync().clip_batches.batch_of["drift"]


def test_a_caption_edit_requests_that_caption_then_its_text_cache_then_the_manifest(runner):
    asked, cursor = requested(runner)
    assert asked == {}, "a fresh project asks for nothing"
    (runner.project.captions_dir / "drift.txt").write_text("demostyle, edited by hand\n")
    runner.sync()
    asked, cursor = requested(runner, cursor)
    assert asked == {"captions": [batch_of_drift(runner)]}
    summary = runner.run("captions")
    assert summary["captions"].materialized == ["drift"], "the batch's other clips are fresh"
    asked, cursor = requested(runner, cursor)
    assert asked == {"text_cache": [batch_of_drift(runner)]}
    runner.run("text_cache")
    asked, cursor = requested(runner, cursor)
    assert asked == {"training_set": [None]}


def test_touching_a_caption_requests_nothing(runner):
    _, cursor = requested(runner)
    caption = runner.project.captions_dir / "drift.txt"
    caption.write_text(caption.read_text())
    runner.sync()
    assert requested(runner, cursor)[0] == {}


def evaluate_schedule(runner: ProjectRunner):
    schedule = runner.defs.get_schedule_def("retrain")
    resources = build_resources(str(runner.project.root))
    with dg.build_schedule_context(instance=runner.instance, resources=resources) as context:
        return schedule.evaluate_tick(context)


def test_the_schedule_skips_an_unchanged_training_set_and_fires_on_a_changed_one(runner, capsys):
    tick = evaluate_schedule(runner)
    assert not tick.run_requests
    assert "latest checkpoint was trained on" in tick.skip_message
    (runner.project.captions_dir / "drift.txt").write_text("demostyle, a changed caption\n")
    status, _ = run_json(capsys, runner.project.root, "--select", "+dataset_report")
    assert status == 0
    tick = evaluate_schedule(runner)
    [request] = tick.run_requests
    keys = runner.instance.get_dynamic_partitions("checkpoints")
    assert request.tags["dagster/asset_partition_range_end"] in keys
    assert (
        request.tags["dagster/asset_partition_range_start"].split("-")[0] != keys[0].split("-")[0]
    )


def unsynced_in_the_ui(runner: ProjectRunner) -> dict[str, list]:
    """What Dagster's own stale-status resolver (the UI's "Unsynced") reports, per asset."""
    resolver = get_stale_status_resolver(runner.instance, list(runner.defs.assets))
    unsynced = {}
    for key in runner.graph.materializable_asset_keys:
        partitions_def = runner.graph.get(key).partitions_def
        keys = (
            runner.instance.get_dynamic_partitions(partitions_def.name)
            if partitions_def
            else [None]
        )
        stale = [k for k in keys if resolver.get_status(key, k) == StaleStatus.STALE]
        if stale:
            unsynced[key.to_user_string()] = stale
    return unsynced


def test_the_ui_marks_exactly_the_edited_clips_caption_unsynced(runner):
    assert unsynced_in_the_ui(runner) == {}, "after a full run nothing is unsynced"
    (runner.project.captions_dir / "drift.txt").write_text("demostyle, edited by hand\n")
    runner.sync()
    assert unsynced_in_the_ui(runner) == {"captions": [batch_of_drift(runner)]}
