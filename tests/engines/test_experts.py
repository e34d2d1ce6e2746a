"""Wan 2.2 A14B on the diffusers engine: each expert's LoRA is trained on its own timesteps, into
its own transformer, and only the experts the recipe chooses are trained."""

from dataclasses import replace

import pytest
import torch
from diffusers import WanPipeline
from safetensors.torch import load_file

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.experts import expert_requests
from wan_lora_dagster.engines.timesteps import TimestepRange, TimestepSampling
from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.testing.stripes import HEADER, SECTION, TRAINING


def draw(within=(0.0, 1.0)) -> torch.Tensor:
    sampling = TimestepSampling("shift", 3.0, within=TimestepRange(*within))
    return sampling.sample(2000, torch.Generator().manual_seed(0))


def test_an_experts_timesteps_keep_the_distributions_shape_inside_its_range():
    high, low, everything = draw((0.875, 1.0)), draw((0.0, 0.875)), draw()
    assert high.min() >= 0.875 and low.max() < 0.875
    # rejection, not rescaling: inside the range, the same distribution as without a range
    inside = everything[everything < 0.875]
    assert abs(low.median() - inside.median()) < 0.02
    assert abs(low.quantile(0.9) - inside.quantile(0.9)) < 0.02


def a14b_request(manifest, output_dir, **settings) -> TrainRequest:
    settings = TRAINING.model_copy(update={"task": "t2v-A14B", **settings})
    return TrainRequest(manifest, settings, (SECTION,), output_dir, "stripes", dict(HEADER))


def test_each_expert_request_names_and_heads_its_files(tmp_path):
    high, low = expert_requests(a14b_request(None, tmp_path), 0.875)
    assert (high.expert, high.timestep_range, high.output_name) == (
        "high_noise",
        (0.875, 1.0),
        "stripes-high_noise",
    )
    assert (low.expert, low.timestep_range) == ("low_noise", (0.0, 0.875))  # fmt: skip
    assert low.header["wan_lora.expert"] == "low_noise" and "training_set" in low.header


@pytest.fixture(scope="module")
def low_noise_only(tiny_model_dir, make_training_set, tmp_path_factory):
    request = a14b_request(None, tmp_path_factory.mktemp("a14b-checkpoints"), experts=("low",))
    request = replace(request, settings=request.settings.model_copy(update={"max_train_epochs": 1}))
    engine = DiffusersEngine(request.settings, models_dir=tiny_model_dir.parent, device="cpu")
    manifest = make_training_set(engine, tmp_path_factory.mktemp("a14b"), 3, 1)
    [checkpoint] = engine.train(
        replace(request, manifest=manifest), lambda report: None, lambda landed: None
    )
    return engine, checkpoint


def test_one_expert_per_run_trains_only_that_experts_lora(low_noise_only):
    engine, checkpoint = low_noise_only
    assert checkpoint.path.name == "stripes-low_noise-000001.safetensors"
    assert lora_experts(checkpoint.path) == {"low_noise": checkpoint.path}
    assert [p.name for p in checkpoint.path.parent.glob("*.safetensors")] == [checkpoint.path.name]
    assert read_lora_header(checkpoint.path)["wan_lora.timestep_boundary"] == "0.875"
    ups = [t for key, t in load_file(checkpoint.path).items() if "lora_up" in key]
    assert any(t.abs().sum() > 0 for t in ups), "the LoRA learned nothing"
    # the shared transformers come out of the run as they went in: no adapter left behind
    for transformer in (engine.models.transformer, engine.models.transformer_2):
        assert not getattr(transformer, "peft_config", {})


def test_the_low_noise_lora_loads_into_transformer_2_with_diffusers_loader(low_noise_only):
    engine, checkpoint = low_noise_only
    pipeline = WanPipeline.from_pretrained(engine.model_folder)
    pipeline.load_lora_weights(str(checkpoint.path), load_into_transformer_2=True)
    assert list(pipeline.get_list_adapters()) == ["transformer_2"]


def test_the_recipes_boundary_overrides_the_models_in_training_and_sampling(
    low_noise_only, tiny_model_dir
):
    settings = low_noise_only[0].settings.model_copy(update={"timestep_boundary": 0.6})
    engine = DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")
    assert engine.models.boundary_ratio == 0.6
    assert engine.models.text_to_video_pipeline().config.boundary_ratio == 0.6
