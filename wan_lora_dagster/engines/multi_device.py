"""An engine whose cache encoding is split over several devices (engines.devices).

Training, sampling and validation run as before, on the first device; only the per-item work,
latents and text embeddings, is shared out, each worker loading the model once. Text embeddings
cost the same each (every caption is padded to 512 tokens), so they are shared by count; a clip's
latents cost what the VAE encodes, frames x pixels, so they are shared by that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wan_lora_dagster.engines import create_engine
from wan_lora_dagster.engines.base import LatentJob, ProgressCallback, TextJob
from wan_lora_dagster.engines.devices import run_share, split_over_devices
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.windows import frame_windows
from wan_lora_dagster.recipe.training import TrainingSettings


class MultiDeviceEngine:
    """engines.base.Engine over `devices`; everything but encoding is the first device's."""

    def __init__(self, settings: TrainingSettings, out_dir: Path, devices: Sequence[str]):
        self.settings = settings
        self.out_dir = out_dir
        self.devices = list(devices)
        self.local = create_engine(settings, out_dir, device=self.devices[0])
        self.name = self.local.name

    def __getattr__(self, name: str):
        return getattr(self.local, name)

    def encode_texts(self, jobs: Sequence[TextJob], progress: ProgressCallback) -> dict[str, Path]:
        self.local.check()  # builds the tiny model once, before the workers load it
        work = run_share(_encode_texts, self.settings, self.out_dir)
        return split_over_devices(self.devices, list(jobs), work, progress)

    def encode_latents(
        self, jobs: Sequence[LatentJob], progress: ProgressCallback
    ) -> dict[str, list[Path]]:
        """Shared out by item, so all of an item's sections land in one worker's answer."""
        self.local.check()
        by_item: dict[str, list[LatentJob]] = {}
        for job in jobs:
            by_item.setdefault(job.item_id, []).append(job)
        work = run_share(_encode_latents, self.settings, self.out_dir)
        groups = list(by_item.values())
        return split_over_devices(self.devices, groups, work, progress, cost=latent_group_cost)


def latent_group_cost(jobs: Sequence[LatentJob]) -> int:
    """What an item's latent jobs cost the VAE: the frames of every window it encodes, times the
    section's pixels (its buckets' bound). A clip's length is its declared duration at its
    frame rate (one frame decoded): close enough to even out the shares, and quick."""
    frames = {}
    cost = 0
    for job in jobs:
        if job.section.source == "stills":
            windows = frame_windows(1, job.section)
        else:
            if job.media_path not in frames:
                info = probe_video(job.media_path)
                frames[job.media_path] = round(info.duration * info.fps)
            windows = frame_windows(frames[job.media_path], job.section)
        width, height = job.section.resolution
        cost += sum(window.num_frames for window in windows) * width * height
    return cost


def _encode_texts(device, jobs, progress, settings, out_dir) -> dict[str, Path]:
    return create_engine(settings, out_dir, device=device).encode_texts(jobs, progress)


def _encode_latents(device, groups, progress, settings, out_dir) -> dict[str, list[Path]]:
    jobs = [job for group in groups for job in group]
    return create_engine(settings, out_dir, device=device).encode_latents(jobs, progress)
