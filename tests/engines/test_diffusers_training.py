import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.training import TrainingSettings

MUSUBI_MODULES = {
    "self_attn_q", "self_attn_k", "self_attn_v", "self_attn_o",
    "cross_attn_q", "cross_attn_k", "cross_attn_v", "cross_attn_o",
    "ffn_0", "ffn_2",
}  # fmt: skip


def test_checkpoints_land_at_the_requested_epochs(training_run):
    names = [checkpoint.path.name for checkpoint in training_run.returned]

    assert names == ["stripes-000005.safetensors", "stripes-000010.safetensors"]
    assert [checkpoint.epoch for checkpoint in training_run.returned] == [5, 10]
    assert training_run.announced == training_run.returned  # on_checkpoint as each one landed
    assert all(checkpoint.path.is_file() for checkpoint in training_run.returned)


def test_checkpoints_use_musubi_key_names(training_run):
    tensors = load_file(training_run.returned[-1].path)

    modules = {
        key.rsplit(".", 2)[0] if "lora_" in key else key.rsplit(".", 1)[0] for key in tensors
    }
    assert modules == {
        f"lora_unet_blocks_{block}_{module}" for block in (0, 1) for module in MUSUBI_MODULES
    }
    sample = "lora_unet_blocks_0_self_attn_q"
    assert tensors[f"{sample}.lora_down.weight"].shape[0] == 4  # network_dim
    assert tensors[f"{sample}.alpha"].item() == 4.0  # network_alpha


def test_checkpoints_carry_the_request_header_and_settings(training_run):
    header = read_lora_header(training_run.returned[0].path)

    for field, value in training_run.request.header.items():
        assert header[field] == value
    assert json.loads(header["training.learning_rate"]) == 1e-2
    assert json.loads(header["training.timestep_sampling"]) == "shift"
    assert header["ss_epoch"] == "5"


def test_progress_is_reported_every_step_with_a_running_loss(training_run):
    progress = training_run.progress
    steps_per_epoch = 6  # six training clips, batch size 1

    assert [report.done for report in progress] == list(range(1, 10 * steps_per_epoch + 1))
    assert {report.total for report in progress} == {10 * steps_per_epoch}
    assert progress[-1].epoch == 10 and progress[0].stage == "train"
    assert all(math.isfinite(report.loss) and report.seconds_per_unit > 0 for report in progress)


def test_training_lowers_the_held_out_loss(engine, training_run, training_set):
    final = training_run.returned[-1].path

    base_loss = engine.validation_loss(None, training_set, training_run.request.settings)
    trained_loss = engine.validation_loss(final, training_set, training_run.request.settings)

    assert trained_loss < base_loss


def test_validation_loss_is_repeatable(engine, training_run, training_set):
    first = training_run.returned[0].path
    settings = training_run.request.settings

    assert engine.validation_loss(first, training_set, settings) == engine.validation_loss(
        first, training_set, settings
    )


def test_validation_without_held_out_clips_says_so(engine, training_set):
    nothing_held_out = TrainingSetManifest(
        tuple(entry for entry in training_set.entries if not entry.held_out),
        root=training_set.root,
    )
    with pytest.raises(EngineError, match="held-out"):
        engine.validation_loss(None, nothing_held_out, TrainingSettings())


def test_a_second_run_never_overwrites_checkpoints(engine, training_run):
    """The same request again finds its run finished: it announces the checkpoints, writes none.
    Another run's request over the same names is refused."""
    before = {c.path: c.path.read_bytes() for c in training_run.returned}
    announced = []

    again = engine.train(training_run.request, lambda progress: None, announced.append)

    assert again == announced == training_run.returned
    header = {**training_run.request.header, "training_set": "another set"}
    other = replace(training_run.request, header=header)
    with pytest.raises(EngineError, match=r"stripes-000005\.safetensors.*header differs"):
        engine.train(other, lambda progress: None, lambda checkpoint: None)
    assert {path: path.read_bytes() for path in before} == before


@pytest.mark.parametrize(
    ("option", "value", "suggestion"),
    [("optimizer", "prodigy", "adamw"), ("lr_scheduler", "rex", "constant_with_warmup")],
)
def test_musubi_only_options_are_refused_saying_what_works(
    engine, training_run, tmp_path, option, value, suggestion
):
    settings = training_run.request.settings.model_copy(update={option: value})
    request = replace(training_run.request, settings=settings, output_dir=tmp_path)

    with pytest.raises(EngineError, match=f"{option} = '{value}'.*{suggestion}"):
        engine.train(request, lambda progress: None, lambda checkpoint: None)

    assert list(tmp_path.iterdir()) == []


def test_the_same_request_trains_the_same_lora_after_other_work(
    engine, training_run, training_set, tmp_path
):
    """Same seed and data give the same LoRA, and nothing of an earlier LoRA leaks into a run."""
    settings = training_run.request.settings
    engine.validation_loss(training_run.returned[0].path, training_set, settings)

    again = engine.train(
        replace(training_run.request, output_dir=tmp_path), lambda p: None, lambda c: None
    )

    assert [c.path.name for c in again] == [c.path.name for c in training_run.returned]
    first, second = load_file(training_run.returned[-1].path), load_file(again[-1].path)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_fp8_weight_storage_trains_a_lora_that_loads_back(
    tiny_model_dir, training_run, training_set, tmp_path
):
    """fp8_base stores the base weights in fp8; LoRAs, trained or loaded, keep computing."""
    settings = training_run.request.settings.model_copy(update={"fp8_base": True})
    engine = DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")
    request = replace(training_run.request, settings=settings, output_dir=tmp_path)

    checkpoints = engine.train(request, lambda p: None, lambda c: None)

    weights = {p.dtype for p in engine.models.transformer.parameters()}
    assert torch.float8_e4m3fn in weights
    base = engine.validation_loss(None, training_set, settings)
    assert engine.validation_loss(checkpoints[-1].path, training_set, settings) < base
