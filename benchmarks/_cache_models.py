"""Random real-shape cache models for benchmarks/caches_gpu.py: our Wan 2.1/2.2 VAEs and UMT5-XXL
built in memory as WanModels components, musubi-tuner's settings over its own random weight files
(wan_lora_dagster/testing/gpu_fixtures.py), and the timing of one cache call."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from wan_lora_dagster.engines.base import Progress
from wan_lora_dagster.engines.fp8 import store_linears_in_fp8
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.gpu_fixtures import (
    DIT_NAME,
    musubi_settings,
    offline_tokenizer,
    random_text_encoder,
    random_weights,
)

# The VAEs' Hub configs (Wan-AI/Wan2.1-T2V-1.3B-Diffusers and Wan2.2-TI2V-5B-Diffusers vae/).
VAE_CONFIGS = {
    "wan2.1": dict(base_dim=96, z_dim=16),
    "wan2.2": dict(
        base_dim=160, decoder_base_dim=256, z_dim=48, is_residual=True, in_channels=12,
        out_channels=12, patch_size=2, scale_factor_spatial=16,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
    ),
}  # fmt: skip
# google/umt5-xxl's encoder: 5.7B parameters
UMT5_XXL = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu", tie_word_embeddings=False,
)  # fmt: skip
UMT5_SMALL = dict(UMT5_XXL, vocab_size=1024, d_model=64, d_ff=128, num_layers=2, num_heads=2)
CAPTION_WORDS = (
    "a", "woman", "in", "a", "red", "coat", "walks", "slowly", "through", "the", "rain", "at",
    "night", "past", "glowing", "shop", "windows", "while", "the", "camera", "tracks", "beside",
    "her", "and", "two", "children", "run", "across", "the", "wet", "street", "toward", "a",
    "small", "bus", "that", "stops", "under", "a", "flickering", "lamp", "by", "the", "sea",
)  # fmt: skip


def _models(device: torch.device, dtype: torch.dtype) -> WanModels:
    """WanModels over no folder: the benchmark puts its components in."""
    models = WanModels(Path("unused"), device, dtype, False)
    models.__dict__["model_index"] = {"_class_name": "WanPipeline"}  # text-to-video
    return models


def _dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def ours_vae_models(vae_name: str, device: torch.device, small: bool) -> WanModels:
    """WanModels with a random VAE of the real config (small: the tiny one of the tests)."""
    from diffusers import AutoencoderKLWan

    if small:
        from wan_lora_dagster.engines.diffusers.tiny import build_tiny_vae
        from wan_lora_dagster.engines.diffusers.tiny22 import _build_wan22_vae

        vae = build_tiny_vae() if vae_name == "wan2.1" else _build_wan22_vae()
    else:
        torch.manual_seed(0)
        vae = AutoencoderKLWan(**VAE_CONFIGS[vae_name])
    models = _models(device, _dtype(device))
    models.__dict__["vae"] = vae.to(device).eval().requires_grad_(False)
    models.__dict__["vae_config"] = dict(vae.config)
    return models


class TextModels:
    """WanModels with a random UMT5-XXL (small: two narrow layers) and the offline tokenizer."""

    def __init__(self, device: torch.device, scratch: Path, small: bool):
        from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

        self.wan = _models(device, _dtype(device))
        tokenizer = offline_tokenizer(scratch / "umt5-tokenizer")
        self.wan.__dict__["tokenizer"] = AutoTokenizer.from_pretrained(tokenizer)
        config = UMT5Config(**(UMT5_SMALL if small else UMT5_XXL))
        torch.manual_seed(0)
        with torch.device(device):
            encoder = UMT5EncoderModel._from_config(config, dtype=self.wan.dtype)
        self.wan.__dict__["text_encoder"] = encoder.eval().requires_grad_(False)

    def store_text_encoder_in_fp8(self) -> None:
        """What `[training] fp8_t5` does when our engine loads the encoder."""
        store_linears_in_fp8(self.wan.text_encoder.encoder, self.wan.dtype)


def ours_text_models(device: torch.device, scratch: Path, small: bool) -> TextModels:
    return TextModels(device, scratch, small)


def musubi_cache_settings(
    musubi: Path, scratch: Path, text_encoder: bool = False
) -> TrainingSettings:
    """musubi's [training] for caching: its random VAE (and real-shape T5 when `text_encoder`),
    the offline tokenizer, and a one-tensor bf16 stand-in for the DiT (caching never opens it;
    the engine's checks read its dtype)."""
    folder = scratch / "musubi-weights"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / DIT_NAME).is_file():
        stand_in = {"blocks.0.cross_attn.k.weight": torch.zeros(1, 1, dtype=torch.bfloat16)}
        save_file(stand_in, str(folder / DIT_NAME))
    weights = random_weights(folder, musubi)
    if text_encoder:
        weights["t5"] = random_text_encoder(folder, musubi)
    weights["tokenizer"] = offline_tokenizer(scratch / "umt5-tokenizer")
    return musubi_settings(musubi, weights)


def timed(call: Callable[[Callable[[Progress], None]], object]) -> tuple[str, str]:
    """(steady, wall) items/s of `call(progress)`: steady over the items reported after its
    first progress report, up to the last one ("n/a" where they came all at once: one batch),
    wall over all items and the whole call."""
    reports: list[tuple[float, int]] = []
    started = time.perf_counter()
    call(lambda progress: reports.append((time.perf_counter(), progress.done)))
    wall_seconds = time.perf_counter() - started
    total = reports[-1][1] if reports else 0
    counted = [(at, done) for at, done in reports if done > 0]
    steady = "n/a"
    if len(counted) >= 2 and counted[-1][0] - counted[0][0] > 0.2 * wall_seconds:
        rate = (counted[-1][1] - counted[0][1]) / (counted[-1][0] - counted[0][0])
        steady = f"{rate:.2f}"
    return steady, f"{total / wall_seconds:.2f}"
