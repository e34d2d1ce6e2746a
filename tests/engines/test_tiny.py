import json

import numpy as np
import pytest
import torch
from diffusers import WanPipeline
from transformers import AutoTokenizer

from wan_lora_dagster.engines.diffusers.tiny import COMPLETE_MARKER, ensure_tiny_model

COMPONENTS = ("transformer", "vae", "text_encoder")


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir) -> WanPipeline:
    return WanPipeline.from_pretrained(tiny_model_dir)


def test_tiny_model_has_the_diffusers_wan_layout(tiny_model_dir):
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    for component in (*COMPONENTS, "tokenizer", "scheduler"):
        assert (tiny_model_dir / component).is_dir(), component
    assert "random weights" in (tiny_model_dir / "README.md").read_text()


def test_tiny_model_generates_a_video_of_the_requested_size(pipeline):
    video = pipeline(
        "stripes drift to the left",
        num_frames=5,
        height=32,
        width=48,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).frames

    assert video.shape == (1, 5, 32, 48, 3)
    assert np.isfinite(video).all()


def test_tiny_model_components_are_small(pipeline):
    for component in COMPONENTS:
        count = sum(p.numel() for p in getattr(pipeline, component).parameters())
        assert 1_000 < count < 300_000, (component, count)


def test_tiny_tokenizer_loads_with_auto_tokenizer_and_ends_with_eos(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir / "tokenizer")

    known = tokenizer("a man walks").input_ids
    unknown = tokenizer("Zyxq").input_ids

    assert len(known) == 4 and known[-1] == tokenizer.eos_token_id  # one token a word, then </s>
    assert tokenizer.unk_token_id not in unknown  # spelled out of characters instead


def test_building_twice_gives_identical_files(tiny_model_dir, tmp_path):
    again = ensure_tiny_model(tmp_path / "tiny")

    built = sorted(p.relative_to(tiny_model_dir) for p in tiny_model_dir.rglob("*") if p.is_file())
    assert built == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for relative in built:
        assert (tiny_model_dir / relative).read_bytes() == (again / relative).read_bytes(), relative


def test_complete_model_is_kept_and_interrupted_build_is_redone(tiny_model_dir, tmp_path):
    weights = tiny_model_dir / "transformer" / "diffusion_pytorch_model.safetensors"
    modified = weights.stat().st_mtime_ns
    assert ensure_tiny_model(tiny_model_dir) == tiny_model_dir
    assert weights.stat().st_mtime_ns == modified

    interrupted = tmp_path / "tiny"
    (interrupted / "vae").mkdir(parents=True)  # a build that died before its marker
    ensure_tiny_model(interrupted)
    assert (interrupted / COMPLETE_MARKER).is_file()
    assert (interrupted / "transformer" / "config.json").is_file()


@pytest.mark.parametrize(("task", "boundary"), [("t2v-A14B", 0.875), ("i2v-A14B", 0.9)])
def test_tiny_a14b_variants_have_two_experts_switched_at_the_boundary(tmp_path, task, boundary):
    folder = ensure_tiny_model(tmp_path / task, task=task)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["boundary_ratio"] == boundary
    assert index.get("image_encoder", [None, None]) == [None, None]  # Wan 2.2 I2V: no CLIP
    configs = [
        json.loads((folder / f / "config.json").read_text())
        for f in ("transformer", "transformer_2")
    ]
    assert configs[0] == configs[1], "two experts of one shape"
    assert (folder / "transformer_2").is_dir() and not (folder / "image_encoder").exists()


def test_tiny_ti2v_5b_has_the_wan22_vae_latent_layout(tmp_path):
    folder = ensure_tiny_model(tmp_path / "ti2v", task="ti2v-5B")
    pipeline = WanPipeline.from_pretrained(folder)
    assert pipeline.config.expand_timesteps
    video = torch.zeros(1, 3, 9, 64, 96)
    with torch.no_grad():
        latents = pipeline.vae.encode(video).latent_dist.mode()
    assert latents.shape == (1, 48, 3, 64 // 16, 96 // 16)  # z_dim 48, 4x16x16 compression
    assert pipeline.transformer.config.in_channels == 48
