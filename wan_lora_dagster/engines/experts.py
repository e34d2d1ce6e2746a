"""Wan 2.2 A14B: a LoRA for each expert, each trained on the timesteps that expert denoises.

The high-noise expert (diffusers' `transformer`) denoises t >= boundary, the low-noise one
(`transformer_2`) t < boundary. Each chosen expert is trained in turn by the engine's own
one-model training, on the same caches (both experts share the VAE and T5), restricted to its
range of t; its files are named and headed as its expert's (formats.expert_lora). A step's
checkpoint is reported once every chosen expert's file of that step has landed, as one
checkpoint: eval and validation need the pair together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from wan_lora_dagster.engines.base import CheckpointInfo, ProgressCallback, TrainRequest
from wan_lora_dagster.formats.expert_lora import (
    BOUNDARY_FIELD,
    EXPERT_FIELD,
    expert_output_name,
)
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import EXPERT_NAMES, HIGH_NOISE, LOW_NOISE, expert_range, wan_task

TrainOne = Callable[
    [TrainRequest, ProgressCallback, Callable[[CheckpointInfo], None]], list[CheckpointInfo]
]


def chosen_experts(settings: TrainingSettings) -> tuple[str, ...]:
    """The experts to train, high noise first; () for a one-transformer task."""
    if not wan_task(settings.task).experts:
        return ()
    chosen = settings.experts or tuple(EXPERT_NAMES)
    return tuple(name for key, name in EXPERT_NAMES.items() if key in chosen)


def timestep_boundary(settings: TrainingSettings, model_boundary: float | None = None) -> float:
    """The user's boundary, else the model's `boundary_ratio`, else the task's default."""
    return settings.timestep_boundary or model_boundary or wan_task(settings.task).boundary


def expert_requests(request: TrainRequest, boundary: float) -> list[TrainRequest]:
    return [
        replace(
            request,
            output_name=expert_output_name(request.output_name, expert),
            header={**request.header, EXPERT_FIELD: expert, BOUNDARY_FIELD: f"{boundary:g}"},
            expert=expert,
            timestep_range=expert_range(expert, boundary),
        )
        for expert in chosen_experts(request.settings)
    ]


def train_per_expert(
    train_one: TrainOne,
    request: TrainRequest,
    progress: ProgressCallback,
    on_checkpoint: Callable[[CheckpointInfo], None],
    model_boundary: float | None = None,
) -> list[CheckpointInfo]:
    """`train_one(request)` for a one-model task; for A14B, each chosen expert in turn."""
    if not chosen_experts(request.settings):
        return train_one(request, progress, on_checkpoint)
    boundary = timestep_boundary(request.settings, model_boundary)
    return train_experts(train_one, request, boundary, progress, on_checkpoint)


def train_experts(
    train_one: TrainOne,
    request: TrainRequest,
    boundary: float,
    progress: ProgressCallback,
    on_checkpoint: Callable[[CheckpointInfo], None],
) -> list[CheckpointInfo]:
    """Train each chosen expert's LoRA with `train_one`; report each step's checkpoint as its
    first expert's file (lora_experts finds the rest) with the experts' mean loss."""
    requests = expert_requests(request, boundary)
    landed: dict[int, list[CheckpointInfo]] = {}
    reported: list[CheckpointInfo] = []

    def on_expert_checkpoint(info: CheckpointInfo) -> None:
        files = landed.setdefault(info.step, [])
        files.append(info)
        if len(files) == len(requests):
            reported.append(_as_one_checkpoint(files))
            on_checkpoint(reported[-1])

    for index, expert_request in enumerate(requests):

        def expert_progress(report, index=index) -> None:
            # one bar over all experts: expert k's step s is step k * total + s
            progress(
                replace(report, done=index * report.total + report.done,
                        total=report.total * len(requests))
            )  # fmt: skip

        train_one(expert_request, expert_progress, on_expert_checkpoint)
    return reported


def _as_one_checkpoint(files: Sequence[CheckpointInfo]) -> CheckpointInfo:
    losses = [info.loss for info in files if info.loss is not None]
    loss = sum(losses) / len(losses) if losses else None
    return CheckpointInfo(files[0].path, files[0].epoch, files[0].step, loss)


class ExpertModels:
    """engines.wan_models.WanModels as one-model code sees it, with `transformer` the expert."""

    def __init__(self, models, expert: str):
        self._models = models
        self._expert = expert

    def __getattr__(self, name: str):
        return getattr(self._models, name)

    @property
    def transformer(self):
        if self._expert == LOW_NOISE:
            return self._models.transformer_2
        return self._models.transformer


def expert_timesteps(timesteps: Sequence[float], boundary: float) -> dict[str, tuple[float, ...]]:
    """Fixed validation timesteps split between the experts that denoise them."""
    split = {HIGH_NOISE: (), LOW_NOISE: ()}
    for t in timesteps:
        expert = HIGH_NOISE if t >= boundary else LOW_NOISE
        split[expert] += (t,)
    return {expert: ts for expert, ts in split.items() if ts}
