"""Eval videos of one checkpoint: every prompt x LoRA strength x seed, through WanPipeline."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import WanPipeline

from wan_lora_dagster.engines.base import Progress, ProgressCallback, SampleRequest, SampleVideo
from wan_lora_dagster.engines.experts import load_lora_into_pipeline
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.media.video_writer import write_video


def sample_video_name(prompt_index: int, strength: float, seed: int) -> str:
    """e.g. `p00_strength0.75_seed42.mp4`: sorts by prompt, then strength, then seed."""
    return f"p{prompt_index:02d}_strength{strength:.2f}_seed{seed}.mp4"


def sample_videos(
    models: WanModels, request: SampleRequest, progress: ProgressCallback
) -> list[SampleVideo]:
    """Strength 0 is the base model itself (LoRA disabled); others scale the LoRA via diffusers."""
    if not request.checkpoint.is_file():
        raise EngineError(f"{request.checkpoint}: LoRA checkpoint not found.")
    settings = request.settings
    pipeline = models.text_to_video_pipeline()
    adapter = _adapter_name(request.checkpoint)
    load_lora_into_pipeline(pipeline, request.checkpoint, adapter)
    jobs = [
        (prompt_index, prompt, strength, seed)
        for strength in settings.strengths
        for prompt_index, prompt in enumerate(settings.prompts)
        for seed in settings.seeds
    ]
    videos = []
    try:
        for prompt_index, prompt, strength, seed in jobs:
            started = time.perf_counter()
            _set_strength(pipeline, adapter, strength)
            path = request.output_dir / sample_video_name(prompt_index, strength, seed)
            write_video(generate(pipeline, request, prompt, seed), path)
            videos.append(SampleVideo(path, prompt, strength, seed))
            elapsed = time.perf_counter() - started
            progress(Progress("sample", len(videos), len(jobs), elapsed))
    finally:
        # Disabling is a flag on the shared transformer's LoRA layers, not on this adapter:
        # left set, it would silence the next LoRA loaded for validation or training.
        pipeline.enable_lora()
        pipeline.delete_adapters(adapter)
    return videos


def generate(pipeline: WanPipeline, request: SampleRequest, prompt: str, seed: int) -> np.ndarray:
    """One video as (num_frames, height, width, 3) uint8; the noise comes from a CPU generator
    seeded with `seed`, so a seed gives the same video on any device."""
    settings = request.settings
    frames = pipeline(
        prompt=prompt,
        negative_prompt=settings.negative_prompt or None,
        height=settings.height,
        width=settings.width,
        num_frames=settings.num_frames,
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).frames[0]
    return (np.asarray(frames) * 255).round().clip(0, 255).astype(np.uint8)


def _set_strength(pipeline: WanPipeline, adapter: str, strength: float) -> None:
    if strength == 0:
        pipeline.disable_lora()
        return
    pipeline.enable_lora()
    pipeline.set_adapters([adapter], adapter_weights=[strength])


def _adapter_name(checkpoint: Path) -> str:
    # peft adapter names become module attribute names: no dots or dashes
    return "eval_" + re.sub(r"\W", "_", checkpoint.stem)
