"""LoRA training of the Wan transformer with peft, saving musubi/ComfyUI-format checkpoints."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from diffusers.optimization import SchedulerType, get_scheduler

from wan_lora_dagster.engines.adapters import (
    require_supported_adapter,
)
from wan_lora_dagster.engines.base import (
    CheckpointInfo,
    Progress,
    ProgressCallback,
    Resumed,
    TrainRequest,
    run_identity,
)
from wan_lora_dagster.engines.diffusers.acceleration import (
    build_optimizer,
    prepare_for_training,
    require_supported_combination,
)
from wan_lora_dagster.engines.diffusers.caption_dropout import CaptionDropout
from wan_lora_dagster.engines.diffusers.ema import WeightAverage
from wan_lora_dagster.engines.diffusers.full_training import FullFineTune
from wan_lora_dagster.engines.diffusers.lora_network import LoraNetwork
from wan_lora_dagster.engines.diffusers.ranks import SINGLE_PROCESS, Ranks
from wan_lora_dagster.engines.diffusers.sharded_training import (
    ShardedFullFineTune,
    ShardedStateStore,
)
from wan_lora_dagster.engines.diffusers.training_log import NoLog, TensorBoardLog, open_log
from wan_lora_dagster.engines.diffusers.training_state import (
    LOSS_FIELD,
    LoopPosition,
    StateStore,
    TrainingComponents,
    kept_checkpoints,
    shuffler_state,
)
from wan_lora_dagster.engines.flow_matching import flow_matching_loss
from wan_lora_dagster.engines.gpus import batch_metadata
from wan_lora_dagster.engines.timesteps import TimestepSampling
from wan_lora_dagster.engines.training_data import (
    TrainingSample,
    epoch_batches,
    load_batches,
    training_samples,
)
from wan_lora_dagster.engines.training_plan import SavePoint, TrainingPlan, plan_training
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.errors import EngineCancelled, EngineError
from wan_lora_dagster.recipe.training import TrainingSettings

logger = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0  # musubi-tuner's default
STATE_FOLDER = "state"  # under the output folder: the states a killed or cancelled run resumes from


def train_lora(
    models: WanModels,
    request: TrainRequest,
    progress: ProgressCallback,
    on_checkpoint: Callable[[CheckpointInfo], None],
    ranks: Ranks = SINGLE_PROCESS,
) -> list[CheckpointInfo]:
    """Train one LoRA from the manifest's caches; the training plan says what lands where.

    A run interrupted earlier (killed, or cancelled) goes on from its newest saved state: the
    checkpoints it saved are kept, announced again and returned first; the rest are saved as
    planned. A run that finished is announced and returned again, and nothing is written. With
    several ranks each step trains world_size batches of the one-GPU order.
    """
    settings = request.settings
    _require_supported_options(settings, models.device)
    _warn_about_ignored(settings)
    plan = plan_training(
        request.manifest, settings, request.sections, ranks.world_size, request.output_name
    )
    samples = training_samples(request.manifest)
    batch_sizes = {section.name: section.batch_size for section in request.sections}
    store = (ShardedStateStore if ranks.sharded else StateStore)(
        request.output_dir / STATE_FOLDER, request.output_name, run_identity(request)
    )
    resumed = store.latest()
    paths = [request.output_dir / point.file_name for point in plan.save_points]
    if resumed is None and all(path.exists() for path in paths):
        # finished, its state dropped, maybe stopped before its last checkpoint was recorded
        finished = kept_checkpoints(plan, request, plan.total_steps)
        if ranks.is_main and (curve := store.finished_curve()):
            step, epoch = plan.total_steps, plan.last_epoch
            resumed = Resumed(step, epoch, store.root, curve)
            progress(Progress("train", step, step, resumed=resumed))
        for checkpoint in finished if ranks.is_main else ():
            on_checkpoint(checkpoint)
        return finished
    kept = kept_checkpoints(plan, request, resumed[0].step) if resumed else _refuse_existing(paths)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    full = ShardedFullFineTune if ranks.sharded else FullFineTune
    network = full(models) if settings.network == "full" else LoraNetwork(models)
    with (
        network.trainable(settings) as parameters,
        prepare_for_training(
            models.transformer,
            parameters,
            settings,
            request.sections,
            models.device,
            network.swappable(settings),
            shards=ranks.world_size if ranks.sharded else 1,
        ),
    ):
        loop = _TrainingLoop(models, request, plan, ranks, store, network)
        position = LoopPosition.start(settings.seed)
        if resumed:
            position, folder = resumed
            store.restore(folder, loop.components)
            if ranks.is_main:
                curve = tuple((step, loss) for step, loss in position.loss_curve)
                resumed = Resumed(position.step, position.epoch, folder, curve)
                progress(Progress("train", position.step, plan.total_steps, resumed=resumed))
        log = open_log(request.log_dir, position.step, models.device, ranks.is_main)
        try:
            saved = loop.run(samples, batch_sizes, position, kept, progress, on_checkpoint, log)
        finally:
            log.close()
    if ranks.is_main:
        store.finish(loop.position)
    return saved


class _TrainingLoop:
    def __init__(
        self,
        models: WanModels,
        request: TrainRequest,
        plan: TrainingPlan,
        ranks: Ranks,
        store: StateStore,
        network: LoraNetwork | FullFineTune,
    ):
        settings = request.settings
        self.network = network
        self.models = models
        self.request = request
        self.plan = plan
        self.total_steps = total_steps = plan.total_steps
        self.ranks = ranks
        self.store = store
        self.model = ranks.wrap(models.transformer)
        # sharding replaces each parameter by its shard: the trained ones of the wrapped model
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(
            settings.optimizer, self.parameters, settings.learning_rate
        )
        self.scheduler = get_scheduler(
            settings.lr_scheduler,
            self.optimizer,
            num_warmup_steps=settings.lr_warmup_steps,
            num_training_steps=total_steps,
        )
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.timesteps = TimestepSampling.of(settings, request.timestep_range)
        self.caption_dropout = CaptionDropout.of(request)
        self.average = WeightAverage.of(settings, self.parameters, models.device)

    @property
    def components(self) -> TrainingComponents:
        """What a saved state holds besides the loop's position."""
        return TrainingComponents(
            self.parameters,
            self.optimizer,
            self.scheduler,
            self.generator,
            self.average,
            self.model,
        )

    def run(
        self,
        samples: list[TrainingSample],
        batch_sizes: dict[str, int],
        position: LoopPosition,
        kept: list[CheckpointInfo],
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
        log: TensorBoardLog | NoLog,
    ) -> list[CheckpointInfo]:
        """Train from `position` to the end; each rank takes every world_size-th batch."""
        rank, world = self.ranks.rank, self.ranks.world_size
        recent_losses = deque(position.recent_losses, maxlen=self.plan.steps_per_epoch)
        curve = list(position.loss_curve)  # grown in place: each position shares it, not a copy
        shuffler, skip = position.shuffler(), position.epoch_steps
        step, epoch = position.step, max(position.epoch - 1, 0)
        self.position = position
        saved = self._announce_kept(kept, position, on_checkpoint)
        try:
            while step < self.total_steps:
                epoch += 1
                epoch_start = shuffler_state(shuffler)
                batches = epoch_batches(samples, batch_sizes, shuffler)
                for index in range(skip, math.ceil(len(batches) / world)):
                    started = time.perf_counter()
                    batch = batches[(index * world + rank) % len(batches)]
                    local_loss = self.train_step(batch, step + 1)
                    rank_losses, stopping = self.ranks.reduce(local_loss)
                    loss = sum(rank_losses) / len(rank_losses)
                    step += 1
                    recent_losses.append(loss)
                    running_loss = sum(recent_losses) / len(recent_losses)
                    curve.append([step, running_loss])
                    self.position = LoopPosition(
                        step, epoch, epoch_start, index + 1, list(recent_losses), curve
                    )
                    if stopping:
                        raise EngineCancelled("cancelled")
                    elapsed = time.perf_counter() - started
                    if self.ranks.is_main:
                        log.step(step, rank_losses, running_loss, self._learning_rate(), elapsed)
                        progress(
                            Progress("train", step, self.total_steps, elapsed, running_loss, epoch)
                        )
                    planned = self.plan.at_step(step)
                    if planned and self._saves:
                        saved.append(self.save(planned, running_loss))
                        if self.ranks.is_main:
                            on_checkpoint(saved[-1])
                    if step == self.total_steps:
                        break
                skip = 0
        except EngineCancelled:
            if self._saves and self.position.step > position.step:
                self.store.save(self.position, self.components)
            raise
        return saved

    def _announce_kept(
        self,
        kept: list[CheckpointInfo],
        position: LoopPosition,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        """The checkpoints an interrupted launch saved, and the one it had the state of but not
        the file (killed between the two, or set aside unrecorded): saved now, from the state."""
        if not self._saves:
            return []
        announced = list(kept)
        planned = self.plan.at_step(position.step)
        if planned and not (self.request.output_dir / planned.file_name).exists():
            losses = position.recent_losses
            announced.append(self.save(planned, sum(losses) / len(losses) if losses else None))
        for checkpoint in announced if self.ranks.is_main else ():
            on_checkpoint(checkpoint)
        return announced

    @property
    def _saves(self) -> bool:
        """Whether this rank takes part in saving states and checkpoints: rank 0, or every rank
        of a sharded training (each writes its shard; rank 0 the rest)."""
        return self.ranks.is_main or self.ranks.sharded

    def _learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def train_step(self, samples: list[TrainingSample], step: int) -> float:
        """One optimizer step over a batch (one forward pass per latent shape in it).

        Its timesteps and noise come from a generator seeded by (seed, step, rank): each rank
        draws its own, and a resumed run draws what the uninterrupted one would have.
        """
        settings = self.request.settings
        self.generator.manual_seed(hash((settings.seed, step, self.ranks.rank)) & 0x7FFF_FFFF)
        total_loss = 0.0
        samples = self.caption_dropout.apply(samples, step, self.ranks.rank)
        shapes = load_batches(samples, self.models.device)
        for index, (batch, count) in enumerate(shapes):
            t = self.timesteps.sample(count, self.generator, tuple(batch.latents.shape[-2:]))
            noise = torch.randn(batch.latents.shape, generator=self.generator)
            # gradients are averaged over the ranks once per step, at the last backward pass
            synchronized = index == len(shapes) - 1
            with nullcontext() if synchronized else self.ranks.no_sync(self.model):
                noise = noise.to(batch.latents.device)
                loss = flow_matching_loss(
                    self.model, batch, noise, t, self.models.dtype, settings.i2v
                )
                (loss * count / len(samples)).backward()
            total_loss += loss.item() * count / len(samples)
        torch.nn.utils.clip_grad_norm_(self.parameters, MAX_GRAD_NORM)
        self.optimizer.step()
        if self.average:
            self.average.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total_loss

    def save(self, checkpoint: SavePoint, loss: float | None) -> CheckpointInfo:
        """The state first, then the LoRA: a checkpoint never lies past the newest state."""
        path = self.request.output_dir / checkpoint.file_name
        if path.exists():
            raise EngineError(f"{path}: a checkpoint of this name exists; not replacing it.")
        self.store.save(self.position, self.components)
        settings = self.request.settings
        metadata = {
            **_settings_metadata(settings),
            **self.request.header,
            **batch_metadata(self.request.sections, self.ranks.world_size),
            "ss_epoch": str(checkpoint.epoch),
            "ss_steps": str(checkpoint.step),
            LOSS_FIELD: json.dumps(loss),
        }
        if self.average:  # first: a checkpoint on disk means its EMA weights are whole
            self.average.save_beside(
                path,
                lambda target, extra: self.network.write(target, settings, {**metadata, **extra}),
            )
        self.network.write(path, settings, metadata)
        logger.info("saved checkpoint %s (step %d)", path, checkpoint.step)
        return CheckpointInfo(path, checkpoint.epoch, checkpoint.step, loss)


def _settings_metadata(settings: TrainingSettings) -> dict[str, str]:
    """Each training setting as a `training.<name>` header field holding its JSON value."""
    return {
        f"training.{name}": json.dumps(value)
        for name, value in settings.model_dump(mode="json").items()
    }


def _require_supported_options(settings: TrainingSettings, device: torch.device) -> None:
    """Refuse musubi-only optimizer and scheduler names, and options that cannot work together,
    before any work, saying what works."""
    require_supported_combination(settings, device)
    require_supported_adapter(settings)
    schedulers = [kind.value for kind in SchedulerType]
    if settings.lr_scheduler not in schedulers:
        raise EngineError(
            f"wan_lora.toml: [training] lr_scheduler = {settings.lr_scheduler!r} is not available "
            f"in the diffusers engine; use one of {', '.join(schedulers)}."
        )


def _refuse_existing(paths: list[Path]) -> list[CheckpointInfo]:
    """A fresh run keeps nothing: any checkpoint of its names is in the way."""
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        raise EngineError(
            f"{existing[0]}: this training run's checkpoint exists already"
            f"{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}. "
            "Checkpoints are never overwritten: choose another output name or remove the files."
        )
    return []


def _warn_about_ignored(settings: TrainingSettings) -> None:
    if settings.fp8_scaled and not settings.fp8_base:
        logger.warning("fp8_scaled scales fp8_base's weights; without fp8_base it does nothing")
    if settings.network_args:
        logger.warning("network_args %s are ignored by the diffusers engine", settings.network_args)
