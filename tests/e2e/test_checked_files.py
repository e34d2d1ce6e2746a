"""Files under out/ are checked against their records, not trusted: a damaged one is remade, and
a changed checkpoint is never exported."""

import json

import pytest

from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline import evaluation
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.project import open_project
from wan_lora_dagster.testing.commands import run_json, wan_lora

pytestmark = pytest.mark.slow


def _status(capsys, project) -> dict:
    status, out = wan_lora(capsys, "status", "--project", project, "--json")
    assert status == 0
    return json.loads(out)


def test_a_truncated_latent_cache_is_found_by_status_and_remade_by_run(demo_copy, capsys):
    record = json.loads((demo_copy / "out/records/latent_cache/drift.json").read_text())
    cache = demo_copy / record["sections"]["video"]["files"][0]
    intact = cache.read_bytes()
    cache.write_bytes(intact[: len(intact) // 2])  # as a full disk or a crash leaves it

    assert _status(capsys, demo_copy)["latent_cache"] == {
        "fresh": 4,
        "unsynced": 1,
        "missing": 0,
        "failed": 0,
        "partitions": {"unsynced": ["drift"], "missing": [], "failed": []},
    }
    status, text = wan_lora(capsys, "status", "--project", demo_copy)
    assert status == 0
    assert "latent_cache unsynced: drift" in text.splitlines()
    status, summary = run_json(capsys, demo_copy, "--select", "latent_cache,training_set")
    assert status == 0
    assert summary["latent_cache"]["materialized"] == ["drift"]
    assert cache.stat().st_size == len(intact)
    assert _status(capsys, demo_copy)["latent_cache"]["fresh"] == 5


def test_a_checkpoint_changed_after_training_is_reported_and_not_exported(demo_copy, capsys):
    catalog = load_catalog(open_project(demo_copy))
    best = json.loads((demo_copy / "out/records/best_lora/__all__.json").read_text())
    key = best["checkpoint"]
    checkpoint = demo_copy / catalog.records.read("lora_checkpoints", key).file
    data = bytearray(checkpoint.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # the same size, one weight now infinite
    checkpoint.write_bytes(bytes(data))

    assert _status(capsys, demo_copy)["lora_checkpoints"]["unsynced"] == 1
    status, summary = run_json(capsys, demo_copy, "--select", "lora_checkpoints")
    assert status == 1
    assert "changed after training" in summary["lora_checkpoints"]["errors"][key]
    with pytest.raises(UserError, match=f"{key}.*changed after training.*{checkpoint.name}"):
        evaluation.export_best(catalog, key, [key], [])
