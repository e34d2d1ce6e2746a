"""Wan 2.1 I2V: caches carry the first frame's CLIP embedding and latents; training uses them."""

from dataclasses import replace

import pytest
import torch
from diffusers import WanImageToVideoPipeline
from safetensors.torch import load_file

from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.formats.musubi_cache import load_latent_cache

CLIP_TOKENS, CLIP_DIM = 5, 16  # the tiny CLIP tower: 2x2 patches + class token, 16 wide


@pytest.fixture(scope="module")
def i2v_engine(tiny_model_dir, training_run) -> DiffusersEngine:
    settings = training_run.request.settings.model_copy(update={"task": "i2v-14B"})
    return DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")


@pytest.fixture(scope="module")
def i2v_training_set(tmp_path_factory, i2v_engine, make_training_set):
    return make_training_set(i2v_engine, tmp_path_factory.mktemp("i2v"), 3, 1)


def test_i2v_caches_hold_the_clip_embedding_and_the_first_frame_condition(i2v_training_set):
    entry = i2v_training_set.entries[0]
    cache = load_latent_cache(i2v_training_set.resolve(entry.latent_files[0]))

    channels, latent_frames, height, width = cache.latent.shape
    assert cache.clip_embedding.shape == (CLIP_TOKENS, CLIP_DIM)
    assert cache.image_latent.shape == (4 + channels, latent_frames, height, width)
    mask = cache.image_latent[:4]
    assert mask[:, 0].eq(1).all() and mask[:, 1:].eq(0).all()  # only the first frame is given


def test_an_i2v_lora_trains_on_the_image_projections_and_loads_in_diffusers(
    i2v_engine, i2v_training_set, training_run, tmp_path
):
    settings = i2v_engine.settings.model_copy(update={"max_train_epochs": 2})
    request = replace(
        training_run.request, manifest=i2v_training_set, settings=settings, output_dir=tmp_path
    )

    [checkpoint] = i2v_engine.train(request, lambda p: None, lambda c: None)

    keys = load_file(checkpoint.path).keys()
    assert "lora_unet_blocks_0_cross_attn_k_img.lora_down.weight" in keys
    converted = WanImageToVideoPipeline.lora_state_dict(str(checkpoint.path))
    assert "transformer.blocks.0.attn2.add_k_proj.lora_A.weight" in converted
    base = i2v_engine.validation_loss(None, i2v_training_set, settings)
    assert i2v_engine.validation_loss(checkpoint.path, i2v_training_set, settings) != base
    assert torch.isfinite(torch.tensor(base))
