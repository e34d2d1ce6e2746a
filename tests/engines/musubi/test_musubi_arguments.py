"""Command lines for musubi-tuner's scripts, and the settings refused before anything runs.

Option names are those of musubi-tuner's parsers at commit 30c658c (training/parser_common.py,
wan_train_network.py, cache_latents.py, cache_text_encoder_outputs.py, wan_generate_video.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi import MusubiEngine, arguments
from wan_lora_dagster.engines.musubi.resume import SegmentOptions
from wan_lora_dagster.errors import ConfigError, EngineError
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.testing.musubi_fixtures import make_weights, musubi_settings, train_request


def value_of(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def test_training_runs_through_accelerate_launch_in_bf16(make_engine, manifest, tmp_path):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    *_, command = engine.plan(request)
    launch = command[command.index(sys.executable) :]
    script = engine.install.script("wan_train_network")
    assert launch[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert value_of(launch, "--num_cpu_threads_per_process") == "1"
    assert value_of(launch, "--mixed_precision") == "bf16"
    assert str(script) in launch and script.parent.parent.name == "src"
    # a clone runs with its src/ on PYTHONPATH, as musubi's docs run it
    assert command[0] == "env" and f"PYTHONPATH={script.parent.parent}" in command[1]


def test_training_passes_every_training_option(make_settings, tmp_path):
    settings = make_settings(
        task="t2v-14B",
        fp8_base=True,
        fp8_scaled=True,
        blocks_to_swap=20,
        attention="sdpa",
        network_dim=32,
        network_alpha=16.0,
        network_args=("loraplus_lr_ratio=4",),
        optimizer="adamw8bit",
        learning_rate=2e-4,
        lr_scheduler="cosine",
        lr_warmup_steps=10,
        timestep_sampling="shift",
        discrete_flow_shift=3.0,
        max_train_epochs=16,
        save_every_n_epochs=2,
        save_every_n_steps=100,
        seed=7,
    )
    segment = SegmentOptions(16, None, 2, 100)
    command = arguments.training_args(settings, Path("ds.toml"), tmp_path, "lora-x", segment)
    expected = {
        "--task": "t2v-14B",
        "--dit": settings.dit,
        "--dataset_config": "ds.toml",
        "--mixed_precision": "bf16",
        "--blocks_to_swap": "20",
        "--network_module": "networks.lora_wan",
        "--network_dim": "32",
        "--network_alpha": "16.0",
        "--network_args": "loraplus_lr_ratio=4",
        "--optimizer_type": "adamw8bit",
        "--learning_rate": "0.0002",
        "--lr_scheduler": "cosine",
        "--lr_warmup_steps": "10",
        "--timestep_sampling": "shift",
        "--discrete_flow_shift": "3.0",
        "--max_train_epochs": "16",
        "--save_every_n_epochs": "2",
        "--save_every_n_steps": "100",
        "--seed": "7",
        "--output_dir": str(tmp_path),
        "--output_name": "lora-x",
    }
    assert {option: value_of(command, option) for option in expected} == expected
    for flag in (
        "--sdpa",
        "--fp8_base",
        "--fp8_scaled",
        "--gradient_checkpointing",
        "--save_state",
    ):
        assert flag in command
    assert "--max_train_steps" not in command  # musubi lets epochs override steps
    assert "--resume" not in command


def test_a_resumed_segment_names_its_state_and_what_is_left(make_settings, tmp_path):
    state = tmp_path / "lora-x-000002-state"
    segment = SegmentOptions(None, 30, None, 10, resume_state=state)
    command = arguments.training_args(make_settings(), Path("ds.toml"), tmp_path, "lora-x", segment)
    assert value_of(command, "--resume") == str(state)
    assert value_of(command, "--max_train_steps") == "30"
    assert "--max_train_epochs" not in command and "--save_every_n_epochs" not in command


@pytest.mark.parametrize(
    ("attention", "training_flag", "generation_mode"),
    [
        ("sdpa", "--sdpa", "torch"),
        ("flash", "--flash_attn", "flash"),
        ("xformers", "--xformers", "xformers"),
    ],
)
def test_attention_choice_reaches_both_scripts(
    make_settings, tmp_path, attention, training_flag, generation_mode
):
    settings = make_settings(attention=attention)
    training = arguments.training_args(
        settings, Path("d"), tmp_path, "x", SegmentOptions(1, None, None, None)
    )
    generation = arguments.generation_args(settings, EvalSettings(), Path("p"), tmp_path, None, 0)
    assert training_flag in training
    assert value_of(generation, "--attn_mode") == generation_mode


def test_caches_always_keep_other_items_caches(make_settings):
    settings = make_settings(fp8_t5=True)
    latents = arguments.latent_cache_args(settings, Path("latents.toml"))
    texts = arguments.text_cache_args(settings, Path("texts.toml"))
    assert "--keep_cache" in latents and "--keep_cache" in texts
    assert value_of(latents, "--vae") == settings.vae and "--clip" not in latents
    assert value_of(texts, "--t5") == settings.t5 and "--fp8_t5" in texts


def test_image_to_video_caches_carry_the_clip_encoder(make_settings, weights):
    settings = make_settings(task="i2v-14B", clip=weights["clip"])
    assert (
        value_of(arguments.latent_cache_args(settings, Path("l.toml")), "--clip") == weights["clip"]
    )


def test_generation_without_lora_at_strength_zero(make_settings, tmp_path):
    evaluation = EvalSettings(
        width=320, height=192, num_frames=17, num_inference_steps=8, negative_prompt="blurry"
    )
    lora = tmp_path / "lora.safetensors"
    plain = arguments.generation_args(
        make_settings(), evaluation, Path("p.txt"), tmp_path, lora, 0.0
    )
    styled = arguments.generation_args(
        make_settings(), evaluation, Path("p.txt"), tmp_path, lora, 0.75
    )
    assert "--lora_weight" not in plain
    assert (value_of(styled, "--lora_weight"), value_of(styled, "--lora_multiplier")) == (
        str(lora),
        "0.75",
    )
    height_width = plain[plain.index("--video_size") + 1 : plain.index("--video_size") + 3]
    assert height_width == ["192", "320"]  # musubi's --video_size is height then width
    assert value_of(plain, "--video_length") == "17" and value_of(plain, "--infer_steps") == "8"
    assert value_of(plain, "--negative_prompt") == "blurry"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fp8_scaled": True}, "fp8_scaled = true needs fp8_base"),
        ({"blocks_to_swap": 30}, "at most 29"),
        ({"task": "t2v-14B", "blocks_to_swap": 40}, "at most 39"),
        ({"task": "i2v-14B"}, "task i2v-14B needs clip"),
        ({"lr_warmup_steps": 100}, "constant_with_warmup"),
        ({"network_args": ("loraplus_lr_ratio",)}, "one key=value"),
        ({"network_args": ("a=b=c",)}, "one key=value"),
        ({"dora": True}, "dora = true: musubi-tuner .* has no DoRA"),
    ],
)
def test_invalid_combinations_are_refused_before_launch(make_engine, overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_engine(**overrides).check()


@pytest.mark.parametrize("network", ["lokr", "loha"])
def test_lokr_and_loha_pass_through_as_musubis_network_modules(make_settings, tmp_path, network):
    """musubi-tuner trains them for Wan (commit 30c658c, docs/loha_lokr.md)."""
    settings = make_settings(network=network)
    segment = SegmentOptions(16, None, 2, None)
    command = arguments.training_args(settings, Path("ds.toml"), tmp_path, "lora-x", segment)
    assert value_of(command, "--network_module") == f"networks.{network}"


@pytest.mark.parametrize(("task", "most"), [("t2v-1.3B", 29), ("t2v-14B", 39), ("i2v-14B", 39)])
def test_the_largest_block_swap_is_accepted(make_settings, weights, task, most):
    arguments.check_settings(make_settings(task=task, blocks_to_swap=most, clip=weights["clip"]))


@pytest.mark.parametrize(
    ("dit_dtype", "overrides", "message"),
    [
        ("F16", {"mixed_precision": "bf16"}, "use mixed_precision = 'fp16'"),
        ("BF16", {"mixed_precision": "fp16"}, "use mixed_precision = 'bf16'"),
        ("F8_E4M3", {"fp8_base": True, "fp8_scaled": True}, "already fp8"),
    ],
)
def test_dit_precision_must_suit_the_settings(fake_musubi, tmp_path, dit_dtype, overrides, message):
    weights = make_weights(tmp_path / "weights", dit_dtype=dit_dtype)
    engine = MusubiEngine(musubi_settings(fake_musubi, weights, **overrides), tmp_path / "work")
    with pytest.raises(ConfigError, match=message):
        engine.check()


def test_missing_weights_are_named(make_engine, tmp_path):
    missing = tmp_path / "nowhere" / "wan_2.1_vae.safetensors"
    with pytest.raises(EngineError) as raised:
        make_engine(vae=str(missing), t5=None).check()
    assert str(missing) in str(raised.value) and "[training] t5 is not set" in str(raised.value)


def test_a_dit_that_is_not_a_wan_dit_is_refused(make_engine, tmp_path):
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}              ")
    with pytest.raises(EngineError, match=r"not a Wan 2\.1 DiT"):
        make_engine(dit=str(other)).check()


def test_flash_attention_must_be_importable(make_engine):
    with pytest.raises(EngineError, match="needs the flash_attn package"):
        make_engine(attention="flash").check()


def test_musubi_not_installed_says_how_to_install(make_engine):
    with pytest.raises(EngineError) as raised:
        make_engine(musubi_dir=None).check()
    assert "pip install -e ." in str(raised.value) and "musubi_dir" in str(raised.value)


def test_musubi_dir_that_is_not_a_clone_is_refused(make_engine, tmp_path):
    with pytest.raises(EngineError, match="is not a musubi-tuner clone"):
        make_engine(musubi_dir=str(tmp_path)).check()


def test_an_installed_musubi_package_is_found(fake_musubi, weights, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(fake_musubi / "src"))
    engine = MusubiEngine(musubi_settings(fake_musubi, weights, musubi_dir=None), tmp_path)
    assert engine.install.script("wan_train_network").parent == fake_musubi / "src" / "musubi_tuner"
    assert engine.install.environment() == {}
