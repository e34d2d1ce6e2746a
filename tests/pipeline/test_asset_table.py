"""The asset table: one ordered graph that the run's stages, status and the UI all read, and the
stage decision `wan-lora run` hands to each step."""

from pathlib import Path

import pytest

from wan_lora_dagster.pipeline.asset_spec import Partitioning
from wan_lora_dagster.pipeline.asset_table import (
    ASSETS,
    SOURCES,
    SPECS,
    STAGES,
    partitioned,
    upstream,
)
from wan_lora_dagster.pipeline.decisions import StageDecision, handed_over
from wan_lora_dagster.project import Project

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_every_asset_reads_only_assets_made_before_it():
    seen = set()
    for spec in ASSETS:
        assert set(spec.reads) <= seen, spec.name
        seen.add(spec.name)
    assert [spec.name for spec in SOURCES] == [name for name in SPECS if name not in STAGES]


def test_the_manifest_is_made_from_per_item_stages_only_and_never_waits_for_previews():
    per_item = {*partitioned(Partitioning.CLIPS), *partitioned(Partitioning.STILLS)}

    assert upstream("training_set") & set(STAGES) == per_item - {"previews"}
    assert "training_set" not in upstream("dataset_report") - {"training_set"}
    assert upstream("best_lora") >= {"eval_videos", "lora_checkpoints", "clips", "films"}


def test_only_the_long_gpu_stages_wait_for_the_user_or_the_schedule():
    assert [name for name in STAGES if not SPECS[name].follows_inputs] == [
        "lora_checkpoints",
        "eval_videos",
    ]


def test_a_step_takes_its_share_of_the_stage_decision(tmp_path: Path):
    decision = StageDecision("clips", make=["c1", "c3"], fresh=["c2", "c4"], blocked=["c5"])

    share = decision.of(["c4", "c3", "c5"])

    assert (share.make, share.fresh, share.blocked) == (["c3"], ["c4"], ["c5"])
    assert decision.covers(["c1", "c5"]) and not decision.covers(["c1", "c6"])
    path = tmp_path / "decision.json"
    decision.save(path)
    assert StageDecision.load(path) == decision


def test_a_handed_over_decision_lives_as_long_as_its_stage(tmp_path: Path):
    project = Project(tmp_path)
    decision = StageDecision("captions", make=["c1"], fresh=[], blocked=[])

    with handed_over(decision, project) as name:
        assert StageDecision.load(tmp_path / name) == decision

    assert not (tmp_path / name).exists()
