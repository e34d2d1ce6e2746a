"""Latent cache encoder: VAE latents of frame windows and stills, musubi format (captions:
engines.diffusers.text_encoding).

Latents are stored normalised with the VAE's latents_mean/std, as musubi-tuner's caches are, so
either engine trains from either engine's caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from wan_lora_dagster.engines.base import LatentJob
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.formats.cache_files import latent_cache_name
from wan_lora_dagster.formats.musubi_cache import save_latent_cache
from wan_lora_dagster.media.buckets import bucket_for_section, resize_to_bucket
from wan_lora_dagster.media.frames import read_frames, read_image
from wan_lora_dagster.media.windows import frame_windows


class Window(NamedTuple):
    """One cache file to write: `frames` (num_frames, height, width, 3) uint8 at its bucket."""

    item_id: str
    path: Path
    frames: np.ndarray


def windows_of(models: WanModels, job: LatentJob) -> list[Window]:
    """Every frame window of one clip (one per window) or still (one) under one section,
    decoded and resized on the CPU: the half of the work that runs beside the GPU's."""
    job.cache_dir.mkdir(parents=True, exist_ok=True)
    section = job.section
    if section.source == "stills":
        frames = read_image(job.media_path)[None]
        _, height, width, _ = frames.shape
        # musubi names images by their source size
        name = latent_cache_name(
            job.item_id, width, height, architecture=models.latent_architecture
        )
        resized = resize_to_bucket(frames, _bucket_of(frames, job, models.resolution_step))
        return [Window(job.item_id, job.cache_dir / name, resized)]
    frames = read_frames(job.media_path)
    bucket = _bucket_of(frames, job, models.resolution_step)
    frames = resize_to_bucket(frames, bucket)  # once: windows of a clip overlap
    return [
        Window(
            job.item_id,
            job.cache_dir
            / latent_cache_name(
                job.item_id,
                *bucket,
                window.start_frame,
                window.num_frames,
                architecture=models.latent_architecture,
            ),
            np.ascontiguousarray(frames[list(window.frame_indices)]),
        )
        for window in frame_windows(len(frames), section)
    ]


def _bucket_of(frames: np.ndarray, job: LatentJob, step: int) -> tuple[int, int]:
    _, height, width, _ = frames.shape
    return bucket_for_section(width, height, job.section, step)


def encode_windows(models: WanModels, windows: list[Window]) -> list[Path]:
    """Windows of one shape -> their cache files: on a GPU in one VAE pass; on a CPU one window
    a pass, each in a tensor of its own, so that a cache's bytes never depend on what was
    encoded beside it (a batch, or a view into one, takes other convolution paths there)."""
    videos = [_to_video_tensor(window.frames, models.device) for window in windows]
    if models.device.type == "cpu":
        latents = torch.cat([normalised_latents(models, video) for video in videos])
    else:
        latents = normalised_latents(models, torch.cat(videos)).cpu()
    for index, window in enumerate(windows):
        extras = (
            _image_to_video_condition(models, window.frames, videos[index])
            if models.is_image_to_video
            else {}
        )
        save_latent_cache(window.path, latents[index], **extras)
    return [window.path for window in windows]


def _to_video_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (1, 3, F, H, W) float32 in [-1, 1], the VAE's input (moved as
    bytes, a quarter of the floats' traffic)."""
    video = torch.from_numpy(frames).to(device, non_blocking=True)
    return video.permute(3, 0, 1, 2)[None].float() / 127.5 - 1


@torch.no_grad()
def normalised_latents(models: WanModels, video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1] -> (B, z_dim, 1 + (F - 1) // 4, H / 8, W / 8), the mode of the
    VAE posterior shifted and scaled per channel by latents_mean/std (musubi's cache contents).

    On a GPU the VAE runs in bf16 (`WanModels.encoding_vae`), the statistics in float32.
    """
    vae = models.encoding_vae
    latents = vae.encode(video.to(vae.dtype)).latent_dist.mode().float()
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=latents.device).view(shape)
    std = torch.tensor(vae.config.latents_std, device=latents.device).view(shape)
    return (latents - mean) / std


@torch.no_grad()
def _image_to_video_condition(
    models: WanModels, frames: np.ndarray, video: torch.Tensor
) -> dict[str, torch.Tensor]:
    """What an I2V model is conditioned on, built as musubi-tuner and diffusers build it.

    clip_embedding: (257, 1280) penultimate CLIP hidden states of the first frame (Wan 2.1 only).
    image_latent: (4 + z_dim, latent_frames, h, w): a mask of the latent frames that are given
    (only the first), then the latents of the first frame followed by zero (mid-grey) frames.
    """
    first_frame_video = torch.cat([video[:, :, :1], torch.zeros_like(video[:, :, 1:])], dim=2)
    latents = normalised_latents(models, first_frame_video)[0]
    condition = {
        "image_latent": torch.cat([_first_frame_mask(video.shape[2], latents), latents]).cpu()
    }
    if models.uses_clip:  # Wan 2.1 only: Wan 2.2 I2V conditions on the latents alone
        pixels = models.image_processor(images=frames[0], return_tensors="pt").pixel_values
        hidden = models.image_encoder(pixels.to(models.device), output_hidden_states=True)
        condition["clip_embedding"] = hidden.hidden_states[-2][0].cpu()
    return condition


def _first_frame_mask(num_frames: int, latents: torch.Tensor) -> torch.Tensor:
    """(4, latent_frames, h, w): ones for the given first frame, in the VAE's 4-frame packing."""
    _, latent_frames, height, width = latents.shape
    mask = torch.zeros(num_frames + 3, height, width, device=latents.device)
    mask[:4] = 1  # the first frame counts four times, as the VAE packs frame 0 alone
    return mask.view(latent_frames, 4, height, width).transpose(0, 1)
