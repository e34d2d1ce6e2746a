"""The in-process engine: diffusers Wan 2.1 + peft LoRA, on a CPU (tiny model) or a GPU.

One engine instance loads each model component once, on first use, and keeps it: the graph
encodes many clips per process. Caches and LoRA files are in musubi-tuner's formats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import torch

from wan_lora_dagster.engines.base import (
    CheckpointInfo,
    LatentJob,
    ProgressCallback,
    SampleRequest,
    SampleVideo,
    TextJob,
    TrainRequest,
)
from wan_lora_dagster.engines.diffusers.caption_dropout import ensure_empty_caption
from wan_lora_dagster.engines.diffusers.distributed import WorkerGroup
from wan_lora_dagster.engines.diffusers.latent_batches import encode_latent_jobs
from wan_lora_dagster.engines.diffusers.lora_training import train_lora
from wan_lora_dagster.engines.diffusers.sampling import sample_videos
from wan_lora_dagster.engines.diffusers.sharded_training import (
    require_shardable,
    sharded_description,
)
from wan_lora_dagster.engines.diffusers.text_encoding import encode_texts
from wan_lora_dagster.engines.diffusers.tiny import ensure_tiny_model
from wan_lora_dagster.engines.experts import (
    ExpertModels,
    expert_timesteps,
    timestep_boundary,
    train_per_expert,
)
from wan_lora_dagster.engines.flow_matching import VALIDATION_TIMESTEPS
from wan_lora_dagster.engines.gpus import require_gpus, resolve_gpus
from wan_lora_dagster.engines.validation import validation_loss
from wan_lora_dagster.engines.wan_models import (
    WanModels,
    check_model_folder,
    compute_dtype,
    pick_device,
)
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.training import TINY_MODEL, TrainingSettings
from wan_lora_dagster.tasks import wan_task

logger = logging.getLogger(__name__)


class DiffusersEngine:
    """engines.base.Engine with the model math in this process.

    settings.model is "tiny" (the embedded random-weight plumbing model, built on first use under
    `models_dir/` in the variant of the task: tasks.WanTask.tiny_model) or a diffusers-format Wan
    folder: Wan 2.1 T2V 1.3B/14B or I2V 14B (whose caches then also hold the first frame's CLIP
    embedding and latents, which training conditions on), Wan 2.2 A14B (a LoRA per expert:
    engines.experts) or TI2V-5B. bf16 on a GPU, fp32 on a CPU.
    """

    name = "diffusers"

    def __init__(self, settings: TrainingSettings, models_dir: Path, device: str | None = None):
        self.settings = settings
        self.models_dir = Path(models_dir)
        self.device = pick_device(device)
        self._workers: WorkerGroup | None = None

    @property
    def is_tiny(self) -> bool:
        return self.settings.model == TINY_MODEL

    @property
    def model_folder(self) -> Path:
        if self.is_tiny:
            return self.models_dir / wan_task(self.settings.task).tiny_model
        return Path(self.settings.model).expanduser()

    @property
    def image_to_video(self) -> bool:
        return wan_task(self.settings.task).image_to_video

    @cached_property
    def models(self) -> WanModels:
        self.check()
        if self.is_tiny:
            logger.info("using the tiny Wan model: random weights, for plumbing, not art")
        dtype = compute_dtype(self.device, self.settings.mixed_precision)
        return WanModels(
            self.model_folder,
            self.device,
            dtype,
            self.settings.fp8_base,
            self.settings.timestep_boundary,
            fp8_t5=self.settings.fp8_t5,
            full_blocks=self.settings.full_blocks or (),
            fp8_scaled=self.settings.fp8_scaled,
        )

    def check(self) -> None:
        if self.is_tiny:
            ensure_tiny_model(self.model_folder, self.settings.task)
        check_model_folder(self.model_folder)

    def encode_latents(
        self, jobs: Sequence[LatentJob], progress: ProgressCallback
    ) -> dict[str, list[Path]]:
        return encode_latent_jobs(self.models, jobs, progress)

    def encode_texts(self, jobs: Sequence[TextJob], progress: ProgressCallback) -> dict[str, Path]:
        return encode_texts(self.models, jobs, progress)

    def train(
        self,
        request: TrainRequest,
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        """request.settings gives the recipe; the model and its precision are this engine's.
        With `gpus` over 1, worker processes train (engines.diffusers.distributed)."""
        ensure_empty_caption(request, self.encode_texts)  # here: workers load no text encoder
        world_size = resolve_gpus(request.settings)
        if world_size > 1:
            return self._train_on_workers(request, world_size, progress, on_checkpoint)

        def train_one(one: TrainRequest, *callbacks) -> list[CheckpointInfo]:
            models = ExpertModels(self.models, one.expert) if one.expert else self.models
            return train_lora(models, one, *callbacks)

        boundary = self.models.boundary_ratio
        return train_per_expert(train_one, request, progress, on_checkpoint, boundary)

    def _train_on_workers(
        self,
        request: TrainRequest,
        world_size: int,
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        """Data-parallel training in worker processes, which load the model themselves."""
        if self.models.boundary_ratio:
            raise EngineError(
                f"wan_lora.toml: [training] gpus = {request.settings.gpus} trains one "
                f"transformer, and {request.settings.task} has two experts: set gpus = 1."
            )
        if self.device.type == "cuda":
            require_gpus(world_size, torch.cuda.device_count())
        if request.settings.network == "full":
            require_shardable(request.settings)
            logger.info(sharded_description(world_size))
        self.check()
        self._workers = WorkerGroup(
            world_size, {"folder": str(self.model_folder), "device": self.device.type}
        )
        return self._workers.train(request, progress, on_checkpoint)

    def sample(self, request: SampleRequest, progress: ProgressCallback) -> list[SampleVideo]:
        return sample_videos(self.models, request, progress)

    def cancel(self) -> None:
        """In-process work run through `engines.background` stops at its next progress report;
        training workers are asked to stop, and killed if they do not."""
        if self._workers is not None:
            self._workers.cancel()

    def validation_loss(
        self, checkpoint: Path | None, manifest: TrainingSetManifest, settings: TrainingSettings
    ) -> float:
        """See engines.validation.validation_loss; of `settings` only `i2v` counts here (the
        model is this engine's, the timesteps and noise are fixed), the musubi engine needs them.
        A14B: each fixed timestep is judged by its expert, with that expert's LoRA."""
        if not self.models.boundary_ratio:
            return validation_loss(
                self.models, checkpoint, manifest, first_frame_given=settings.i2v
            )
        experts = lora_experts(checkpoint) if checkpoint else {}
        boundary = timestep_boundary(settings, self.models.boundary_ratio)
        total, count = 0.0, 0
        for expert, timesteps in expert_timesteps(VALIDATION_TIMESTEPS, boundary).items():
            models = ExpertModels(self.models, expert)
            loss = validation_loss(models, experts.get(expert), manifest, timesteps)
            total, count = total + loss * len(timesteps), count + len(timesteps)
        return total / count
