"""The whole graph on the demo project: films to best_lora through `wan-lora run`."""

import json

import dagster as dg
from safetensors import safe_open

from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.pipeline.asset_spec import Partitioning
from wan_lora_dagster.pipeline.asset_table import STAGES, partitioned
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.training_set import build_manifest
from wan_lora_dagster.project import open_project
from wan_lora_dagster.project_builder import DEMO_DATASET, demo_recipe, write_recipe
from wan_lora_dagster.testing.commands import run_json, wan_lora


def test_demo_materializes_every_asset_and_exports_a_lora(built_demo):
    best = json.loads((built_demo / "out/records/best_lora/__all__.json").read_text())
    lora = built_demo / best["file"]
    with safe_open(str(lora), "pt") as handle:
        keys = list(handle.keys())
    assert any(key.startswith("lora_unet_blocks_0_self_attn_q.lora_down") for key in keys)
    header = read_lora_header(lora)
    manifest = built_demo / "out/training_set" / f"{header['wan_lora.training_set']}.json"
    assert manifest.is_file(), "the LoRA's header names the manifest that trained it"
    assert best["validation_loss"] < best["validation_loss_base"], "training learned nothing"


def test_a_second_run_makes_nothing_and_status_is_all_fresh(demo_copy, capsys):
    status, summary = run_json(capsys, demo_copy)
    assert status == 0
    assert {asset: stage["materialized"] for asset, stage in summary.items()} == {
        asset: [] for asset in STAGES
    }
    status, out = wan_lora(capsys, "status", "--project", demo_copy, "--json")
    counts = json.loads(out)
    for asset in STAGES:
        assert counts[asset]["unsynced"] == counts[asset]["missing"] == 0, asset
        assert counts[asset]["failed"] == 0, asset
        no_demo_stills = asset in partitioned(Partitioning.STILLS)
        assert counts[asset]["fresh"] >= 1 or no_demo_stills, asset


def test_clip_checks_pass_and_the_clip_across_a_cut_warns(built_demo):
    instance = open_instance(open_project(built_demo))
    results = {}
    for check in ("sixteen_fps", "frame_count", "no_hard_cuts"):
        key = dg.AssetCheckKey(dg.AssetKey("clips"), check)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        results[check] = record.event.asset_check_evaluation
    assert results["sixteen_fps"].passed and results["frame_count"].passed
    assert not results["no_hard_cuts"].passed
    assert "shapes_5000-7500" in results["no_hard_cuts"].metadata


def test_a_section_with_no_clips_stops_before_training(demo_copy, capsys):
    long = {"name": "long", "source": "clips", "resolution": [64, 48], "target_frames": [81]}
    write_recipe(demo_copy, **demo_recipe(datasets=[DEMO_DATASET, long]))
    status, summary = run_json(capsys, demo_copy)
    assert status != 0
    assert summary["training_set"]["failed"] == ["__all__"]
    assert "section 'long': no training clips" in summary["training_set"]["errors"]["__all__"]
    assert summary["lora_checkpoints"]["materialized"] == []
    assert not list((demo_copy / "out" / "checkpoints").glob("lora-*.safetensors"))[2:]


def test_the_planned_manifest_of_a_dry_run_is_the_one_training_gets(built_demo):
    catalog = load_catalog(open_project(built_demo))
    recipe = catalog.project.recipe
    planned = build_manifest(catalog, recipe, planned=True)
    assert planned.version == build_manifest(catalog, recipe).version
