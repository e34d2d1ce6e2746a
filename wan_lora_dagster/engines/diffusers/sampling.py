"""Eval videos of one checkpoint through diffusers' Wan pipelines: every prompt x LoRA strength x
seed (x start image, image-to-video), and the latent walk; see engines.eval_plan for which."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from diffusers import WanImageToVideoPipeline, WanPipeline
from PIL import Image

from wan_lora_dagster.engines.adapters import load_into_pipeline
from wan_lora_dagster.engines.base import Progress, ProgressCallback, SampleRequest, SampleVideo
from wan_lora_dagster.engines.diffusers.full_checkpoint import model_strengths
from wan_lora_dagster.engines.diffusers.image_to_video import image_to_video_pipeline
from wan_lora_dagster.engines.diffusers.latent_walk import walk_noise
from wan_lora_dagster.engines.eval_plan import EvalJob, plain_jobs, walk_jobs
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.media.video_writer import write_video

WanVideoPipeline = WanPipeline | WanImageToVideoPipeline


def sample_videos(
    models: WanModels, request: SampleRequest, progress: ProgressCallback
) -> list[SampleVideo]:
    """Strength 0 is the base model itself (LoRA disabled); others scale the LoRA via diffusers
    (a full fine-tune's model folder: its difference to the base model)."""
    if not request.checkpoint.exists():
        raise EngineError(f"{request.checkpoint}: checkpoint not found.")
    pipeline = _pipeline(models, request)
    jobs = plain_jobs(request.settings, request.start_images)
    jobs += walk_jobs(request.settings, request.start_images)
    videos = []
    with _strengths(pipeline, request.checkpoint) as set_strength:
        for job in jobs:
            started = time.perf_counter()
            set_strength(job.strength)
            path = request.output_dir / job.file_name
            write_video(generate(pipeline, request, job), path)
            videos.append(
                SampleVideo(
                    path, job.prompt, job.strength, job.seed, job.start_image, job.walk_position
                )
            )
            elapsed = time.perf_counter() - started
            progress(Progress("sample", len(videos), len(jobs), elapsed))
    return videos


@contextmanager
def _strengths(pipeline: WanVideoPipeline, checkpoint: Path) -> Iterator[Callable[[float], None]]:
    """A setter of the checkpoint's strength on the pipeline's transformer while inside."""
    if checkpoint.is_dir():
        with model_strengths(pipeline.transformer, checkpoint) as set_strength:
            yield set_strength
        return
    adapter = _adapter_name(checkpoint)
    load_into_pipeline(pipeline, checkpoint, adapter)
    try:
        yield lambda strength: _set_strength(pipeline, adapter, strength)
    finally:
        # Disabling is a flag on the shared transformer's LoRA layers, not on this adapter:
        # left set, it would silence the next LoRA loaded for validation or training.
        pipeline.enable_lora()
        pipeline.delete_adapters(adapter)


def generate(pipeline: WanVideoPipeline, request: SampleRequest, job: EvalJob) -> np.ndarray:
    """One video as (num_frames, height, width, 3) uint8; the noise comes from a CPU generator
    seeded with the job's seed (a seed gives the same video on any device), or for a walk video
    from the slerp between the walk's seeds' noises."""
    settings = request.settings
    options = {}
    if job.start_image is not None:
        options["image"] = Image.open(job.start_image.path).convert("RGB")
    if job.walk_position is not None:
        scale = (pipeline.vae_scale_factor_temporal, pipeline.vae_scale_factor_spatial)
        latent_channels = pipeline.vae.config.z_dim
        options["latents"] = walk_noise(settings, job.walk_position, latent_channels, scale)
    frames = pipeline(
        prompt=job.prompt,
        negative_prompt=settings.negative_prompt or None,
        height=settings.height,
        width=settings.width,
        num_frames=settings.num_frames,
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        generator=torch.Generator().manual_seed(job.seed),
        output_type="np",
        **options,
    ).frames[0]
    return (np.asarray(frames) * 255).round().clip(0, 255).astype(np.uint8)


def _pipeline(models: WanModels, request: SampleRequest) -> WanVideoPipeline:
    if models.expands_timesteps and request.start_images:  # TI2V-5B trained with i2v = true
        return image_to_video_pipeline(models)
    if not models.is_image_to_video:
        return models.text_to_video_pipeline()
    if not request.start_images:
        raise EngineError(
            f"{models.folder}: an image-to-video model samples from start images, and this "
            "eval has none: hold out a clip ([eval] num_held_out) or list [eval] images."
        )
    return image_to_video_pipeline(models)


def _set_strength(pipeline: WanVideoPipeline, adapter: str, strength: float) -> None:
    if strength == 0:
        pipeline.disable_lora()
        return
    pipeline.enable_lora()
    pipeline.set_adapters([adapter], adapter_weights=[strength])


def _adapter_name(checkpoint: Path) -> str:
    # peft adapter names become module attribute names: no dots or dashes
    return "eval_" + re.sub(r"\W", "_", checkpoint.stem)
