"""The tiny model's Wan 2.2 variants: random weights, for plumbing, not art (see tiny.py).

- t2v-A14B / i2v-A14B: two experts of one shape, `transformer` (high noise) and `transformer_2`
  (low noise), switched at `boundary_ratio`, over the Wan 2.1 VAE and T5, as in
  Wan-AI/Wan2.2-T2V-A14B-Diffusers and Wan2.2-I2V-A14B-Diffusers (whose I2V has no CLIP encoder).
- ti2v-5B: one transformer over the Wan 2.2 VAE (48 latent channels, 4x16x16 compression: a
  2x2 pixel patch, then 8x) with per-token timesteps, as Wan-AI/Wan2.2-TI2V-5B-Diffusers.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline

from wan_lora_dagster.engines.diffusers.tiny import (
    SEED,
    _build_transformer,
    build_tiny_components,
    build_tiny_vae,
    calibrate_latent_statistics,
)
from wan_lora_dagster.tasks import WAN22_VAE, WanTask

# The real Wan 2.2 VAE's latent layout (its channels and strides) is what is tested.
WAN22_LATENT_CHANNELS = WAN22_VAE.latent_channels


def build_tiny_wan22_pipeline(task: WanTask) -> WanPipeline | WanImageToVideoPipeline:
    if task.experts:
        return _two_expert_pipeline(task.image_to_video, task.boundary)
    components = build_tiny_components()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 5)
        components["vae"] = _build_wan22_vae()
        torch.manual_seed(SEED + 2)
        components["transformer"] = _build_transformer(False, WAN22_LATENT_CHANNELS)
    return WanPipeline(**components, expand_timesteps=True)


def _two_expert_pipeline(image_to_video: bool, boundary: float):
    components = {**build_tiny_components(), "vae": build_tiny_vae()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 2)
        components["transformer"] = _build_transformer(image_to_video, clip=False)
        torch.manual_seed(SEED + 4)
        components["transformer_2"] = _build_transformer(image_to_video, clip=False)
    pipeline_class = WanImageToVideoPipeline if image_to_video else WanPipeline
    return pipeline_class(**components, boundary_ratio=boundary)


def _build_wan22_vae() -> AutoencoderKLWan:
    """The Wan 2.2 VAE's layout (residual blocks, 2x2 pixel patches, z_dim 48) at a 4-wide base."""
    vae = AutoencoderKLWan(
        base_dim=4,
        decoder_base_dim=4,
        z_dim=WAN22_LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=WAN22_VAE.spatial_compression,
        latents_mean=[0.0] * WAN22_LATENT_CHANNELS,
        latents_std=[1.0] * WAN22_LATENT_CHANNELS,
    ).eval()
    return calibrate_latent_statistics(vae)
