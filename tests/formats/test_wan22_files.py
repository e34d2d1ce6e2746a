"""Wan 2.2 files: the LoRA pair of an A14B checkpoint, and TI2V-5B latents named apart."""

import pytest
import torch
from safetensors.torch import save_file

from wan_lora_dagster.formats.cache_files import (
    CacheFileError,
    latent_cache_name,
    parse_latent_cache_name,
)
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.formats.musubi_cache import load_latent_cache, save_latent_cache


def lora(path, expert=None):
    metadata = {"wan_lora.expert": expert} if expert else {}
    save_file({"a.alpha": torch.tensor(1.0)}, str(path), metadata=metadata)
    return path


def test_either_file_of_a_pair_finds_the_pair_high_noise_first(tmp_path):
    high = lora(tmp_path / "lora-x-high_noise-000002.safetensors", "high_noise")
    low = lora(tmp_path / "lora-x-low_noise-000002.safetensors", "low_noise")
    lora(tmp_path / "lora-x-low_noise-000004.safetensors", "low_noise")  # another step
    assert list(lora_experts(low).items()) == [("high_noise", high), ("low_noise", low)]
    assert lora_experts(high) == lora_experts(low)


def test_a_one_model_lora_has_no_experts_and_a_lone_expert_is_alone(tmp_path):
    assert lora_experts(lora(tmp_path / "lora-x-000001.safetensors")) == {}
    lone = lora(tmp_path / "lora-y-high_noise-000001.safetensors", "high_noise")
    assert lora_experts(lone) == {"high_noise": lone}


def test_wan22_vae_latents_are_named_and_headed_apart_from_wan21_latents(tmp_path):
    name = latent_cache_name("clip", 64, 32, 0, 9, architecture="wan22")
    assert name == "clip_00000-009_0064x0032_wan22.safetensors"
    assert parse_latent_cache_name(name).architecture == "wan22"
    save_latent_cache(tmp_path / name, torch.zeros(48, 3, 2, 4))
    assert load_latent_cache(tmp_path / name).latent.shape == (48, 3, 2, 4)
    # a Wan 2.2 VAE latent renamed as a Wan 2.1 one is refused, not trained on
    renamed = tmp_path / latent_cache_name("clip", 64, 32, 0, 9)
    (tmp_path / name).rename(renamed)
    with pytest.raises(CacheFileError, match="architecture 'wan22', expected 'wan'"):
        load_latent_cache(renamed)
