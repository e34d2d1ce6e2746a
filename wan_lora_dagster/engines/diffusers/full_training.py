"""`network = "full"`: a full fine-tune of the transformer's linear weights.

What trains: the weight and bias of every nn.Linear of the transformer (its blocks, the text and
time embedders, the output projection), or with `full_blocks = [0, 1, 5]` those of the listed
blocks only. Norms, modulation tables and the patch embedding stay as they are.

The trained tensors are kept in `full_dtype` (fp32 by default: master weights, so that AdamW's
small updates are not lost to bf16's rounding) and each trained linear computes in the dtype the
model was loaded in, its weight cast on the way in (the cast is differentiated, so gradients
arrive in fp32). The engine keeps one transformer for training, validation and sampling, so the
base values go to CPU memory for the run and come back after it, as a LoRA is removed.

The memory features apply to what is frozen: `fp8_base` stores the blocks that are not trained in
fp8 (engines.wan_models), `blocks_to_swap` moves only those blocks (acceleration.block_swap).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from wan_lora_dagster.engines.diffusers.full_checkpoint import save_model_folder
from wan_lora_dagster.engines.fp8 import Fp8StoredLinear
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.training import TrainingSettings

FULL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
NETWORK_MODULE = "wan_lora.full"  # ss_network_module of a full fine-tune's header


class TrainedLinear(Fp8StoredLinear):
    """An nn.Linear whose weight is kept in the training dtype and computed in `compute_dtype`:
    the forward of an fp8-stored linear, for any stored dtype."""


def trained_blocks(settings: TrainingSettings, num_blocks: int) -> list[int]:
    """The blocks whose linears train: `full_blocks`, checked against this model, or all."""
    if settings.full_blocks is None:
        return list(range(num_blocks))
    beyond = sorted(index for index in settings.full_blocks if index >= num_blocks)
    if beyond:
        raise EngineError(
            f"wan_lora.toml: [training] full_blocks lists {beyond}, but this model has "
            f"{num_blocks} transformer blocks (0 to {num_blocks - 1})."
        )
    return sorted(settings.full_blocks)


def trained_linears(transformer: nn.Module, settings: TrainingSettings) -> dict[str, nn.Linear]:
    """Module name -> each linear the run trains."""
    prefixes = None
    if settings.full_blocks is not None:
        blocks = trained_blocks(settings, len(transformer.blocks))
        prefixes = tuple(f"blocks.{index}." for index in blocks)
    return {
        name: module
        for name, module in transformer.named_modules()
        if isinstance(module, nn.Linear) and (prefixes is None or name.startswith(prefixes))
    }


def frozen_blocks(transformer: nn.Module, settings: TrainingSettings) -> nn.ModuleList:
    """The blocks nothing of which trains: what fp8_base stores and blocks_to_swap may move."""
    trained = set(trained_blocks(settings, len(transformer.blocks)))
    return nn.ModuleList(b for i, b in enumerate(transformer.blocks) if i not in trained)


def require_full_options(transformer: nn.Module, settings: TrainingSettings) -> None:
    """Refuse, before any work, the memory options that have nothing to act on."""
    frozen = len(frozen_blocks(transformer, settings))
    if settings.fp8_base and not frozen:
        raise EngineError(
            "wan_lora.toml: [training] fp8_base stores the frozen blocks in fp8, and a full "
            "fine-tune of every block has none: list the trained blocks in full_blocks."
        )
    if settings.blocks_to_swap > frozen:
        raise EngineError(
            f"wan_lora.toml: [training] blocks_to_swap = {settings.blocks_to_swap}: a full "
            f"fine-tune swaps only frozen blocks, and this one has {frozen} (the blocks not in "
            "full_blocks)."
        )
    if settings.gradient_checkpointing_cpu_offload and settings.full_blocks is None:
        raise EngineError(
            "wan_lora.toml: [training] gradient_checkpointing_cpu_offload needs the text and "
            "time embedders frozen (their outputs feed every block), and a full fine-tune "
            "without full_blocks trains them: list the blocks in full_blocks "
            "(full_blocks = [0, 1, ..., N-1] trains every block)."
        )


@contextmanager
def full_trainable(models: WanModels, settings: TrainingSettings) -> Iterator[list[nn.Parameter]]:
    """The trained linears' parameters in `full_dtype`, trainable, for the duration of a run;
    the base model again afterwards."""
    transformer = models.transformer
    require_full_options(transformer, settings)
    if any(isinstance(module, BaseTunerLayer) for module in transformer.modules()):
        # a LoRA trained, validated or sampled earlier in this process leaves peft's wrappers
        # around the linears (deleting its adapter keeps them): a full fine-tune trains, and
        # saves, the plain model's names
        transformer.unload_lora()
    linears = trained_linears(transformer, settings)
    dtype = FULL_DTYPES[settings.full_dtype]
    homes: list[tuple[nn.Parameter, torch.Tensor]] = []
    for linear in linears.values():
        linear.compute_dtype = linear.weight.dtype
        linear.__class__ = TrainedLinear
        for parameter in linear.parameters(recurse=False):
            homes.append((parameter, parameter.data.to("cpu", copy=True)))
            parameter.data = parameter.data.to(dtype, copy=True)
            parameter.requires_grad_(True)
    checkpointing = settings.gradient_checkpointing and transformer._supports_gradient_checkpointing
    if checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    try:
        yield [parameter for parameter, _ in homes]
    finally:
        transformer.eval()
        if checkpointing:
            transformer.disable_gradient_checkpointing()
        for parameter, home in homes:
            parameter.data = home.to(parameter.device)
        for linear in linears.values():
            linear.__class__ = nn.Linear
            del linear.compute_dtype
        transformer.requires_grad_(False)


class FullFineTune:
    """The full fine-tune as the training loop sees it (lora_training.train_lora): what trains,
    which blocks may be swapped, and how a checkpoint is written."""

    def __init__(self, models: WanModels):
        self.models = models

    def trainable(self, settings: TrainingSettings):
        return full_trainable(self.models, settings)

    def swappable(self, settings: TrainingSettings) -> nn.ModuleList:
        return frozen_blocks(self.models.transformer, settings)

    def write(self, path: Path, settings: TrainingSettings, metadata: dict[str, str]) -> None:
        transformer = self.models.transformer
        names = [
            f"{name}.{tensor}"
            for name, linear in trained_linears(transformer, settings).items()
            for tensor, _ in linear.named_parameters(recurse=False)
        ]
        header = {
            **metadata,
            "ss_network_module": NETWORK_MODULE,
            "wan_lora.full_blocks": json.dumps(settings.full_blocks),
        }
        self.save(names, path, header)

    def save(self, trained: list[str], path: Path, header: dict[str, str]) -> None:
        """The model as trained, into the folder `path` (`trained`: the tensors that trained)."""
        base = self.models.folder / "transformer"
        save_model_folder(self.models.transformer, trained, base, path, header)
