"""Speed and memory options of the diffusers engine, applied around one training run.

`[training]` compile, fp8_base (applied when the model loads: engines.wan_models), fp8_compute,
blocks_to_swap, gradient_checkpointing_cpu_offload, optimizer = "adamw8bit", and the memory check
before the first step. Each works with the others; a combination that cannot work is refused
before any work.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from diffusers import WanTransformer3DModel
from torch import nn

from wan_lora_dagster.engines.diffusers.acceleration.activation_offload import (
    checkpoint_with_inputs_on_host,
)
from wan_lora_dagster.engines.diffusers.acceleration.block_swap import swapped_blocks
from wan_lora_dagster.engines.diffusers.acceleration.compile import compiled_blocks
from wan_lora_dagster.engines.diffusers.acceleration.fp8_compute import (
    fp8_compute_linears,
    require_fp8_compute,
)
from wan_lora_dagster.engines.diffusers.acceleration.memory_estimate import check_memory
from wan_lora_dagster.engines.diffusers.acceleration.optimizers import (
    EIGHT_BIT_ADAMW,
    build_optimizer,
    require_known_optimizer,
)
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

__all__ = ["build_optimizer", "prepare_for_training", "require_supported_combination"]


def require_supported_combination(settings: TrainingSettings, device: torch.device) -> None:
    """Refuse, before any work (the model not yet loaded), the options that cannot work together
    or on `device`, saying what would."""
    require_known_optimizer(settings.optimizer)
    if settings.fp8_compute:
        require_fp8_compute(settings, device)
    if settings.blocks_to_swap and not settings.gradient_checkpointing:
        raise EngineError(
            f"wan_lora.toml: [training] blocks_to_swap = {settings.blocks_to_swap} needs "
            "gradient_checkpointing = true (without it every block's weights are kept for "
            "backward, so none can leave the GPU)."
        )
    if settings.gradient_checkpointing_cpu_offload and not settings.gradient_checkpointing:
        raise EngineError(
            "wan_lora.toml: [training] gradient_checkpointing_cpu_offload = true needs "
            "gradient_checkpointing = true (it moves the checkpointed activations)."
        )
    if settings.optimizer.lower() in EIGHT_BIT_ADAMW and not importlib.util.find_spec(
        "bitsandbytes"
    ):
        raise EngineError(
            "wan_lora.toml: [training] optimizer = 'adamw8bit' needs bitsandbytes, which is not "
            "installed: pip install 'wan-lora-dagster[speed]'."
        )


@contextmanager
def prepare_for_training(
    transformer: WanTransformer3DModel,
    trained: Sequence[torch.nn.Parameter],
    settings: TrainingSettings,
    sections: Sequence[DatasetSection],
    device: torch.device,
    swappable: nn.ModuleList | None = None,
    shards: int = 1,
) -> Iterator[None]:
    """The options applied to a transformer that already carries its trainable LoRA (and has
    gradient checkpointing on when asked); undone on the way out, so that validation and
    sampling find the model as it was. swappable: the blocks block swap may move (default all;
    a full fine-tune's frozen blocks). shards: the processes the trained weights are split over
    (engines.diffusers.sharded_training)."""
    blocks = transformer.blocks
    if settings.blocks_to_swap >= len(blocks):
        raise EngineError(
            f"wan_lora.toml: [training] blocks_to_swap = {settings.blocks_to_swap}, but this "
            f"model has {len(blocks)} transformer blocks: swap at most {len(blocks) - 1}."
        )
    movable = blocks if swappable is None else swappable  # a full fine-tune: its frozen ones
    most = len(blocks) - 1 if swappable is None else len(swappable)
    with ExitStack() as undo:
        # first: the memory check and block swapping see (and move) the fp8 weights
        if settings.fp8_compute:
            undo.enter_context(fp8_compute_linears(blocks, device))
        check_memory(
            transformer, trained, settings, sections, device, most_swapped=most, shards=shards
        )
        if settings.gradient_checkpointing_cpu_offload:
            transformer.enable_gradient_checkpointing(checkpoint_with_inputs_on_host)
        if settings.blocks_to_swap:
            undo.enter_context(swapped_blocks(movable, settings.blocks_to_swap, device))
        if settings.compile:
            undo.enter_context(compiled_blocks(blocks))
        yield
