"""Wan 2.2 through the whole graph on the diffusers engine, with the tiny 2.2 variants.

Each project is the demo with another task, one epoch and few frames. An A14B LoRA is a pair of
files, one per expert, that diffusers' own Wan 2.2 loader puts into `transformer` (high noise)
and `transformer_2` (low noise); TI2V-5B's latents are its own VAE's (48 channels, sides / 16).
"""

import json
from pathlib import Path

import pytest
from diffusers import WanImageToVideoPipeline, WanPipeline

from wan_lora_dagster.formats.cache_files import parse_latent_cache_name, read_lora_header
from wan_lora_dagster.formats.musubi_cache import load_latent_cache
from wan_lora_dagster.testing.demo_variants import TI2V_SIZES, record, run_project

pytestmark = pytest.mark.slow


# Each task's project: one epoch, few frames, few steps.
def current_checkpoint(project: Path) -> tuple[str, dict]:
    """The key and record of the one checkpoint trained on the current training set (the
    demo's own Wan 2.1 checkpoints are kept beside it)."""
    training_set = record(project, "training_set")["data_version"]
    [current] = [
        (path.stem, json.loads(path.read_text()))
        for path in (project / "out/records/lora_checkpoints").glob("*.json")
        if json.loads(path.read_text())["training_set"] == training_set
    ]
    return current


def expert_files(project: Path) -> dict[str, Path]:
    _, checkpoint = current_checkpoint(project)
    return {expert: project / file for expert, file in checkpoint["expert_files"].items()}


@pytest.fixture(scope="module")
def t2v_a14b(built_demo, tmp_path_factory) -> Path:
    return run_project(built_demo, tmp_path_factory.mktemp("wan22"), "t2v-A14B")


def test_t2v_a14b_saves_a_lora_per_expert_named_and_headed_as_its_expert(t2v_a14b):
    files = expert_files(t2v_a14b)
    assert list(files) == ["high_noise", "low_noise"]
    for expert, path in files.items():
        assert path.name.endswith(f"-{expert}-000001.safetensors")
        header = read_lora_header(path)
        assert header["wan_lora.expert"] == expert
        assert header["wan_lora.timestep_boundary"] == "0.875"  # the model's boundary_ratio


def test_diffusers_own_wan22_loader_puts_each_expert_lora_into_its_transformer(t2v_a14b):
    files = expert_files(t2v_a14b)
    pipeline = WanPipeline.from_pretrained(t2v_a14b / "out/models/tiny-t2v-A14B")
    pipeline.load_lora_weights(str(files["high_noise"]), adapter_name="high")
    pipeline.load_lora_weights(
        str(files["low_noise"]), adapter_name="low", load_into_transformer_2=True
    )
    assert pipeline.get_list_adapters() == {"transformer": ["high"], "transformer_2": ["low"]}


def test_t2v_a14b_is_evaluated_and_exported_as_a_pair(t2v_a14b):
    key, _ = current_checkpoint(t2v_a14b)
    evaluation = record(t2v_a14b, "eval_videos", key)
    assert evaluation["validation_loss"] != evaluation["validation_loss_base"]
    best = record(t2v_a14b, "best_lora")
    exported = {
        read_lora_header(p)["wan_lora.expert"]: p
        for p in (t2v_a14b / "out/best").glob("*.safetensors")
    }
    assert {expert: path.name for expert, path in exported.items()} == {
        "high_noise": "adapter_model-high_noise-best.safetensors",
        "low_noise": "adapter_model-low_noise-best.safetensors",
    }
    assert t2v_a14b / best["file"] == exported["high_noise"]


def test_i2v_a14b_trains_both_experts_on_first_frame_caches_without_clip(built_demo, tmp_path):
    # up to the checkpoints: image-to-video eval videos are another issue's
    project = run_project(built_demo, tmp_path, "i2v-A14B", "--select", "+lora_checkpoints")
    [latent] = list((project / "out/cache/video").glob("*_wan.safetensors"))[:1]
    cache = load_latent_cache(latent)
    assert cache.clip_embedding is None  # Wan 2.2 I2V has no CLIP image encoder
    assert cache.image_latent.shape[0] == 4 + cache.latent.shape[0]
    files = expert_files(project)
    assert read_lora_header(files["low_noise"])["wan_lora.timestep_boundary"] == "0.9"
    pipeline = WanImageToVideoPipeline.from_pretrained(project / "out/models/tiny-i2v-A14B")
    pipeline.load_lora_weights(str(files["low_noise"]), load_into_transformer_2=True)
    assert list(pipeline.get_list_adapters()) == ["transformer_2"]


def test_ti2v_5b_caches_latents_of_its_own_vae_and_trains_one_lora(built_demo, tmp_path):
    project = run_project(built_demo, tmp_path, "ti2v-5B", changes=TI2V_SIZES)
    latents = sorted((project / "out/cache/video").glob("*.safetensors"))
    assert latents and all(parse_latent_cache_name(p.name).architecture == "wan22" for p in latents)
    channels, _, height, width = load_latent_cache(latents[0]).latent.shape
    assert (channels, height, width) == (48, 32 // 16, 64 // 16)
    key, checkpoint = current_checkpoint(project)
    assert "expert_files" not in checkpoint
    assert "wan_lora.expert" not in read_lora_header(project / checkpoint["file"])
    pipeline = WanPipeline.from_pretrained(project / "out/models/tiny-ti2v-5B")
    pipeline.load_lora_weights(str(project / checkpoint["file"]))
    assert len(record(project, "eval_videos", key)["videos"]) == 2
