"""Wan 2.2 on the musubi engine: one musubi run per A14B expert, and no TI2V-5B.

Every option is checked against musubi-tuner's own documentation, docs/wan.md at commit
30c658c (the clone the engine drives), cited by line in each test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi import arguments
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.testing.musubi_fixtures import train_request, write_safetensors


def value_of(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


@pytest.fixture
def dit_high_noise(weights, tmp_path) -> str:
    return str(shutil.copy(weights["dit"], tmp_path / "high_noise_dit.safetensors"))


def training_commands(make_engine, manifest, tmp_path, **settings) -> list[list[str]]:
    engine = make_engine(**settings)
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    return [command for command in engine.plan(request) if "--network_module" in command]


def test_a14b_trains_each_expert_in_its_own_run_on_its_timesteps(
    make_engine, manifest, weights, dit_high_noise, tmp_path
):
    high, low = training_commands(
        make_engine, manifest, tmp_path, task="t2v-A14B", dit_high_noise=dit_high_noise
    )
    # docs/wan.md:185 "`--task` is one of ... `t2v-A14B`, `i2v-A14B` (for Wan2.2 14B models)"
    assert value_of(high, "--task") == value_of(low, "--task") == "t2v-A14B"
    # docs/wan.md:189 "if you want to train with either the high-noise model or the low-noise
    # model, specify the model with `--dit` as in Wan2.1. In this case, it is recommended to
    # specify the range of timesteps described in the table below, and
    # `--preserve_distribution_shape`"; docs/wan.md:213-214 "T2V low noise | 0 | 875",
    # "T2V high noise | 875 | 1000"; docs/wan.md:187 "values are specified in the range of 0
    # to 1000".
    assert value_of(high, "--dit") == str(Path(dit_high_noise).resolve())
    assert value_of(low, "--dit") == str(Path(weights["dit"]).resolve())
    assert (value_of(high, "--min_timestep"), value_of(high, "--max_timestep")) == ("875", "1000")
    assert (value_of(low, "--min_timestep"), value_of(low, "--max_timestep")) == ("0", "875")
    assert "--preserve_distribution_shape" in high and "--preserve_distribution_shape" in low
    # docs/wan.md:191: `--dit_high_noise` in a training run trains ONE LoRA shared by both
    # experts; a LoRA for each expert is what we want, so it is never passed to training.
    assert "--dit_high_noise" not in high + low
    assert value_of(high, "--output_name") == "lora-abc123-high_noise"
    assert value_of(low, "--output_name") == "lora-abc123-low_noise"


def test_i2v_a14b_runs_on_its_boundary_without_clip(
    make_engine, manifest, dit_high_noise, tmp_path
):
    [low] = training_commands(
        make_engine, manifest, tmp_path, task="i2v-A14B", experts=("low",), clip=None
    )
    # docs/wan.md:211 "I2V low noise | 0 | 900"; docs/wan.md:119 "For Wan2.2, CLIP model is
    # not required."
    assert (value_of(low, "--min_timestep"), value_of(low, "--max_timestep")) == ("0", "900")
    assert value_of(low, "--output_name").endswith("-low_noise")


def test_the_high_noise_expert_needs_its_dit(make_engine, manifest, tmp_path):
    with pytest.raises(ConfigError, match="dit_high_noise"):
        training_commands(make_engine, manifest, tmp_path, task="t2v-A14B")


def test_ti2v_5b_is_refused_with_the_engine_that_trains_it(make_engine):
    engine = make_engine(task="ti2v-5B")
    with pytest.raises(ConfigError, match=r"no TI2V-5B.*use engine = 'diffusers'"):
        engine.check()


def test_a14b_samples_with_both_experts_each_with_its_lora(make_settings, dit_high_noise, tmp_path):
    settings = make_settings(task="t2v-A14B", dit_high_noise=dit_high_noise)
    loras = {
        expert: write_safetensors(
            tmp_path / f"lora-x-{expert}-000001.safetensors",
            {"lora_unet_blocks_0_self_attn_q.alpha": "F32"},
            {"wan_lora.expert": expert},
        )
        for expert in ("high_noise", "low_noise")
    }
    command = arguments.generation_args(
        settings, EvalSettings(), Path("p.txt"), tmp_path, loras["high_noise"], 0.5
    )
    # docs/wan.md:302 "you can specify the low-noise model with `--dit` and the high-noise model
    # with `--dit_high_noise`. The two models are switched at the timestep specified by
    # `--timestep_boundary`"; wan_generate_video.py's parser: --lora_weight_high_noise and
    # --lora_multiplier_high_noise for the high-noise model, --lora_weight for `--dit`'s.
    assert value_of(command, "--dit_high_noise") == str(Path(dit_high_noise).resolve())
    assert value_of(command, "--timestep_boundary") == "0.875"
    assert value_of(command, "--lora_weight_high_noise") == str(loras["high_noise"])
    assert value_of(command, "--lora_weight") == str(loras["low_noise"])
    assert value_of(command, "--lora_multiplier_high_noise") == "0.5"
    # docs/wan.md:304 "`--offload_inactive_dit` only works when `--blocks_to_swap` is not
    # specified, so use `--lazy_loading` instead"
    assert "--offload_inactive_dit" in command
    swapping = make_settings(task="t2v-A14B", dit_high_noise=dit_high_noise, blocks_to_swap=10)
    command = arguments.generation_args(swapping, EvalSettings(), Path("p.txt"), tmp_path, None, 0)
    assert "--lazy_loading" in command and "--lora_weight" not in command


def test_i2v_a14b_caches_the_first_frame_latents_without_clip(make_settings):
    settings = make_settings(task="i2v-A14B", experts=("low",))
    command = arguments.latent_cache_args(settings, Path("ds.toml"))
    # docs/wan.md:119 "If you train I2V models, add `--i2v` option to the above command. ...
    # For Wan2.2, CLIP model is not required."
    assert "--i2v" in command and "--clip" not in command
