"""`network = "full"` on the tiny model: a full fine-tune saved as diffusers transformer folders
that diffusers loads, exported as one file with ComfyUI's (Wan's original) key names, resumed
exactly, limited by full_blocks, validated and sampled like a LoRA."""

import json
import re
from dataclasses import replace

import pytest
import torch
from diffusers import WanPipeline, WanTransformer3DModel
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from safetensors.torch import load_file

from wan_lora_dagster.engines.base import SampleRequest
from wan_lora_dagster.engines.diffusers.full_checkpoint import (
    TRAINED_FIELD,
    model_strengths,
    save_model_folder,
)
from wan_lora_dagster.engines.diffusers.lora_training import STATE_FOLDER
from wan_lora_dagster.errors import EngineCancelled, EngineError
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.full_model import (
    export_single_file,
    model_tensors,
    original_to_diffusers,
    weight_files,
)
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.testing.full_fine_tune import (
    FULL,
    base_transformer,
    forward,
    full_settings,
    request_for,
)
from wan_lora_dagster.testing.stripes import HEADER, ignore_progress


@pytest.fixture(scope="module")
def full_run(engine, training_set, tmp_path_factory):
    request = request_for(training_set, tmp_path_factory.mktemp("full"))
    return request, engine.train(request, ignore_progress, lambda checkpoint: None)


def test_checkpoints_are_model_folders_that_diffusers_loads_with_the_trained_outputs(
    engine, full_run, tiny_model_dir
):
    _, saved = full_run
    assert [c.path.name for c in saved] == ["stripes-000002", "stripes-000004"]
    folder = saved[-1].path
    header = read_lora_header(folder)
    assert header["training_set"] == HEADER["training_set"], "the lineage header travels"
    assert header["ss_steps"] == "24" and float(header["wan_lora.loss"]) == saved[-1].loss
    loaded = WanTransformer3DModel.from_pretrained(folder).eval()
    base = base_transformer(tiny_model_dir)
    with model_strengths(engine.models.transformer, folder) as set_strength:
        set_strength(1.0)
        trained = forward(engine.models.transformer)
    assert torch.equal(forward(loaded), trained)
    assert not torch.allclose(forward(base), trained), "training changed nothing"
    assert torch.equal(forward(engine.models.transformer), forward(base)), "base not restored"
    pipeline = WanPipeline.from_pretrained(tiny_model_dir, transformer=loaded)
    assert pipeline.transformer is loaded


def test_every_linear_trains_and_nothing_else(full_run, tiny_model_dir):
    folder = full_run[1][-1].path
    base = base_transformer(tiny_model_dir).state_dict()
    changed = {key for key, value in model_tensors(folder) if not torch.equal(value, base[key])}
    linears = {
        f"{name}.{tensor}"
        for name, module in base_transformer(tiny_model_dir).named_modules()
        if isinstance(module, torch.nn.Linear)
        for tensor in ("weight", "bias")
    }
    assert changed == linears
    assert set(json.loads(read_lora_header(folder)[TRAINED_FIELD])) == linears


def test_a_sharded_save_loads_as_the_same_model(engine, full_run, tmp_path):
    folder = full_run[1][-1].path
    with model_strengths(engine.models.transformer, folder) as set_strength:
        set_strength(1.0)
        sharded = save_model_folder(
            engine.models.transformer, [], engine.models.folder / "transformer",
            tmp_path / "sharded", {"note": "small shards"}, max_shard_size="20KB",
        )  # fmt: skip
    assert len(weight_files(sharded)) > 1
    one, many = dict(model_tensors(folder)), dict(model_tensors(sharded))
    assert one.keys() == many.keys()
    assert all(torch.equal(one[key], many[key]) for key in one)
    loaded = WanTransformer3DModel.from_pretrained(sharded).eval()
    single = WanTransformer3DModel.from_pretrained(folder).eval()
    # equal tensors; the shards' memory layout may pick another CPU kernel: last-bit differences
    assert torch.allclose(forward(loaded), forward(single), rtol=0, atol=1e-6)


def test_the_single_file_has_comfyui_names_and_maps_back_to_the_same_tensors(full_run, tmp_path):
    folder = full_run[1][-1].path
    path = export_single_file(folder, tmp_path / "wan_model.safetensors", {"extra": "x"})
    exported = load_file(path)
    for key in ("head.modulation", "head.head.weight", "patch_embedding.weight"):
        assert key in exported  # what ComfyUI's model detection looks for
    assert "blocks.0.ffn.0.weight" in exported and "blocks.1.norm3.weight" in exported
    assert read_lora_header(path)["training_set"] == HEADER["training_set"]
    assert read_lora_header(path)["extra"] == "x"
    saved = dict(model_tensors(folder))
    ours = {original_to_diffusers(key): value for key, value in exported.items()}
    theirs = convert_wan_transformer_to_diffusers(dict(exported))  # diffusers' own reader
    for mapped in (ours, theirs):
        assert mapped.keys() == saved.keys()
        assert all(torch.equal(mapped[key], saved[key]) for key in saved)


def test_an_interrupted_full_fine_tune_resumes_to_the_same_model(
    engine, full_run, training_set, tmp_path
):
    request = replace(full_run[0], output_dir=tmp_path)

    def cancel_at_9(report):
        if report.done == 9:  # mid-epoch 2, before its checkpoint
            raise EngineCancelled("cancelled")

    with pytest.raises(EngineCancelled):
        engine.train(request, cancel_at_9, lambda checkpoint: None)
    assert [p.name for p in (tmp_path / STATE_FOLDER).iterdir()] == ["stripes-step00000009"]
    resumed = engine.train(request, ignore_progress, lambda checkpoint: None)
    uninterrupted = full_run[1]
    assert [c.path.name for c in resumed] == [c.path.name for c in uninterrupted]
    for ours, theirs in zip(resumed, uninterrupted, strict=True):
        one, other = dict(model_tensors(ours.path)), dict(model_tensors(theirs.path))
        assert all(torch.equal(one[key], other[key]) for key in one), ours.path.name
        assert ours.loss == theirs.loss


def test_full_blocks_limits_what_changes(engine, training_set, tiny_model_dir, tmp_path):
    settings = full_settings(full_blocks=(1,), max_train_steps=3)
    [saved] = engine.train(request_for(training_set, tmp_path, settings), ignore_progress, print)
    base = base_transformer(tiny_model_dir).state_dict()
    changed = {key for key, value in model_tensors(saved.path) if not torch.equal(value, base[key])}
    assert changed and all(key.startswith("blocks.1.") for key in changed)
    assert all(key.endswith((".weight", ".bias")) and "norm" not in key for key in changed)


def test_validation_and_eval_use_the_model_at_its_strength(engine, full_run, training_set):
    folder = full_run[1][-1].path
    with_model = engine.validation_loss(folder, training_set, FULL)
    base = engine.validation_loss(None, training_set, FULL)
    assert with_model < base, "the fine-tuned model fits the held-out stripes better"
    settings = EvalSettings(strengths=(0.0, 1.0), width=32, height=32, num_frames=5,
                            num_inference_steps=2)  # fmt: skip
    videos = engine.sample(SampleRequest(folder, settings, folder.parent / "eval"), ignore_progress)
    assert [video.strength for video in videos] == [0.0, 1.0]
    assert videos[0].path.read_bytes() != videos[1].path.read_bytes()
    assert engine.validation_loss(None, training_set, FULL) == base, "the base model is back"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fp8_base": True}, "a full fine-tune of every block has none"),
        ({"full_blocks": (0,), "blocks_to_swap": 2}, "this one has 1"),
        ({"gradient_checkpointing_cpu_offload": True}, "list the blocks in full_blocks"),
        ({"full_blocks": (5,)}, "full_blocks lists [5], but this model has 2"),
    ],
)
def test_options_with_nothing_to_act_on_are_refused_before_any_work(
    engine, training_set, tmp_path, changes, message
):
    request = request_for(training_set, tmp_path, full_settings(**changes))
    with pytest.raises(EngineError, match=re.escape(message)):
        engine.train(request, ignore_progress, lambda checkpoint: None)
    assert not list(tmp_path.iterdir()), "nothing written"
