"""Caption dropout, EMA and the new timestep schemes through the whole graph (diffusers engine):
train, checkpoint, eval, validation loss, best. Each project is the demo retrained for one epoch."""

from pathlib import Path

import pytest
from safetensors.torch import load_file

from wan_lora_dagster.formats.cache_files import ema_file, read_lora_header
from wan_lora_dagster.formats.musubi_cache import load_text_cache
from wan_lora_dagster.testing.demo_variants import SHORT, record, run_project

pytestmark = pytest.mark.slow


def with_modes(
    built_demo: Path, target: Path, training: dict, evaluation: dict | None = None
) -> Path:
    changes = {
        "training": {**SHORT["training"], **training},
        "eval": {**SHORT["eval"], **(evaluation or {})},
    }
    return run_project(built_demo, target, "t2v-1.3B", changes=changes)


def evaluated_checkpoint(built_demo: Path, project: Path) -> tuple[str, dict]:
    """The retrained run's checkpoint, evaluated and chosen best (the demo's are kept beside)."""
    best = record(project, "best_lora")
    key = best["checkpoint"]
    assert not (built_demo / "out/records/lora_checkpoints" / f"{key}.json").exists()
    evaluation = record(project, "eval_videos", key)
    assert evaluation["validation_loss"] is not None and evaluation["videos"]
    assert best["validation_loss"] == evaluation["validation_loss"]
    return key, record(project, "lora_checkpoints", key)


def test_caption_dropout_and_logit_normal_timesteps(built_demo, tmp_path):
    project = with_modes(
        built_demo,
        tmp_path,
        {
            "timestep_sampling": "logit_normal",
            "logit_mean": -0.5,
            "min_timestep": 100,
            "max_timestep": 900,
            "caption_dropout_rate": 0.5,
        },
    )
    _, checkpoint = evaluated_checkpoint(built_demo, project)
    [empty] = (project / "out/cache/text").glob("_empty_caption-*_wan_te.safetensors")
    assert load_text_cache(empty).shape[0] >= 1
    header = read_lora_header(project / checkpoint["file"])
    assert '"caption_dropout_rate":0.5' in header["wan_lora.training_settings"]


def test_ema_weights_are_saved_evaluated_and_exported(built_demo, tmp_path):
    project = with_modes(
        built_demo,
        tmp_path,
        {"timestep_sampling": "flux_shift", "ema_decay": 0.5, "ema_device": "cpu"},
        {"use_ema": True},
    )
    key, checkpoint = evaluated_checkpoint(built_demo, project)
    lora = project / checkpoint["file"]
    assert checkpoint["ema_files"] == [str(ema_file(lora).relative_to(project))]
    average, exported = (
        load_file(ema_file(lora)),
        load_file(project / "out/best/adapter_model.safetensors"),
    )
    weights = load_file(lora)
    assert exported.keys() == average.keys() == weights.keys()
    assert all((exported[name] == average[name]).all() for name in average), "exports the EMA"
    assert any((average[name] != weights[name]).any() for name in average)
    assert (
        read_lora_header(project / "out/best/adapter_model.safetensors")["wan_lora.checkpoint"]
        == key
    )
