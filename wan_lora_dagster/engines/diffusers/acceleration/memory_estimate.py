"""An honest look at GPU memory before the first step, instead of running out of it hours in.

The peak is estimated from the model as loaded (each block's frozen weights in their real dtypes:
fp8 or bf16), the blocks swapped out, the LoRA (fp32 weights and gradients) and its optimizer
state, and the activations of the largest batch the dataset sections can make. The activation
terms are in units of one hidden-state tensor (tokens x dim in the compute dtype):

- with gradient checkpointing, each block's input is kept (unless parked in CPU memory), and one
  block at a time holds its full working set during recomputation and backward;
- without it, every block holds its working set.

The working set, WORKING_SET_HIDDEN_STATES hidden states, is calibrated on measurements
(benchmarks/README.md: t2v-14B with fp8 weights at 384x208x45, rank 32: 19.2 GiB allocated of
which 15.8 GiB are weights, LoRA and AdamW state, 1.4 GiB the 40 blocks' inputs). What the card
must hold beyond torch's allocations (the allocator's cached blocks, the CUDA context, cuBLAS
workspaces) is ALLOCATOR_SLACK of them plus CUDA_CONTEXT: fitted on an H200 (benchmarks/README.md,
engine_gpu.py, 2026-11-28), where torch allocated 18.8 / 16.2 / 14.6 / 4.3 / 5.3 GiB (the
allocation estimate: 19.2 / 16.9 / 14.6 / 4.2 / 5.1) and nvidia-smi showed 21.2 / 19.9 / 17.9 /
5.6 / 6.8 GiB (this estimate: 22.8 / 20.2 / 17.5 / 5.6 / 6.6).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from wan_lora_dagster.engines.diffusers.acceleration.optimizers import (
    optimizer_state_bytes_per_parameter,
)
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

logger = logging.getLogger(__name__)

GIB = 1024**3
WORKING_SET_HIDDEN_STATES = 54
ALLOCATOR_SLACK = 0.15
CUDA_CONTEXT = 3 * GIB // 4
VAE_STRIDE = (4, 8, 8)  # Wan 2.1's VAE: 4x in time (after the first frame), 8x in space
SWAP_BUFFERS = 3  # swapped blocks on the GPU at once: the current, the next, one being freed


def section_tokens(section: DatasetSection, patch_size: Sequence[int]) -> int:
    """The transformer's sequence length for the section's largest batch.

    frames F -> (F - 1) / 4 + 1 latent frames; pixels h x w -> h/8 x w/8 latents; patches of
    patch_size (1, 2, 2): 384x208x45 -> 12 x 13 x 24 = 3744 tokens. Buckets never exceed the
    section's resolution in area, so its resolution bounds them.
    """
    if section.source == "stills":
        frames = 1
    elif section.frame_extraction == "full":
        frames = section.max_frames
    else:
        frames = max(section.target_frames)
    width, height = section.resolution
    latent = ((frames - 1) // VAE_STRIDE[0] + 1, height // VAE_STRIDE[1], width // VAE_STRIDE[2])
    patches = [max(1, side // patch) for side, patch in zip(latent, patch_size, strict=True)]
    return section.batch_size * patches[0] * patches[1] * patches[2]


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    lora_and_optimizer: int
    activations: int

    @property
    def total(self) -> int:
        allocated = self.weights + self.lora_and_optimizer + self.activations
        return int(allocated * (1 + ALLOCATOR_SLACK)) + CUDA_CONTEXT

    def describe(self) -> str:
        return (
            f"{self.total / GIB:.1f} GiB (frozen weights {self.weights / GIB:.1f}, trained "
            f"weights with gradients and optimizer state {self.lora_and_optimizer / GIB:.1f}, "
            f"activations "
            f"{self.activations / GIB:.1f}, allocator slack {ALLOCATOR_SLACK:.0%}, CUDA context "
            f"{CUDA_CONTEXT / GIB:.2f})"
        )


# What a training may use on common cards (GiB torch can have of each): a 24 GB consumer card,
# an 80 GB H100 or A100, a 141 GB H200.
CARDS = {"24 GB": 23.6, "80 GB": 79.2, "141 GB": 139.8}


def cards_fitting(total: int) -> str:
    """Which of CARDS an estimated peak fits: said in the memory check's log line."""
    fits = [name for name, usable in CARDS.items() if total <= usable * GIB]
    others = [name for name in CARDS if name not in fits]
    if not fits:
        return f"fits none of the {', '.join(CARDS)} cards"
    return f"fits a {' or '.join(fits)} card" + (f", not {', '.join(others)}" if others else "")


def estimate_peak(
    blocks: nn.ModuleList,
    other_weights: int,
    trained: Sequence[nn.Parameter],
    settings: TrainingSettings,
    tokens: int,
    hidden_dim: int,
    activation_bytes: int,
    blocks_to_swap: int,
    shards: int = 1,
) -> MemoryEstimate:
    """Peak GPU memory of a training step. other_weights: bytes of the frozen weights outside
    the blocks; tokens: the largest batch's sequence length (times its batch size); shards: the
    processes the trained weights, gradients and optimizer state are split over (FSDP), each
    also holding two blocks' trained weights gathered whole (the one computing, the next)."""
    block_bytes = [_frozen_bytes(block) for block in blocks]
    swapped = min(blocks_to_swap, len(blocks))
    largest_block = max(block_bytes)
    weights = other_weights + sum(block_bytes) - swapped * largest_block
    weights += min(swapped, SWAP_BUFFERS) * largest_block
    lora = sum(trained_bytes(parameter, settings.optimizer) for parameter in trained)
    if shards > 1:
        in_blocks = [
            sum(p.numel() for p in block.parameters() if p.requires_grad) for block in blocks
        ]
        lora = lora // shards + 2 * max(in_blocks) * activation_bytes
    hidden_state = tokens * hidden_dim * activation_bytes
    if settings.gradient_checkpointing:
        kept_inputs = 0 if settings.gradient_checkpointing_cpu_offload else len(blocks)
        activations = (kept_inputs + WORKING_SET_HIDDEN_STATES) * hidden_state
    else:
        activations = len(blocks) * WORKING_SET_HIDDEN_STATES * hidden_state
    return MemoryEstimate(weights, lora, activations)


def trained_bytes(parameter: nn.Parameter, optimizer: str) -> int:
    """A trained parameter's weight, its gradient (same dtype) and its optimizer state."""
    size = parameter.element_size()
    return parameter.numel() * (2 * size + optimizer_state_bytes_per_parameter(optimizer, size))


def _memory_for_training(transformer: nn.Module, device: torch.device) -> int:
    """The card's free memory, what this process has cached but not in use, and the
    transformer's own weights (counted in the estimate): not what else is on the card (another
    process, or this one's VAE and text encoder, kept from encoding)."""
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    tensors = [*transformer.parameters(), *transformer.buffers()]
    on_card = sum(t.numel() * t.element_size() for t in tensors if t.device.type == "cuda")
    return free + cached + on_card


def _frozen_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters() if not p.requires_grad)


def training_estimator(
    transformer: nn.Module,
    trained: Sequence[nn.Parameter],
    settings: TrainingSettings,
    sections: Sequence[DatasetSection],
    full_precision: bool,
    shards: int = 1,
) -> tuple[Callable[[int], MemoryEstimate], int]:
    """(blocks_to_swap -> the estimated peak, the largest batch's tokens) for this training."""
    blocks = transformer.blocks
    in_blocks = {id(p) for p in blocks.parameters()}
    other = sum(
        p.numel() * p.element_size()
        for p in transformer.parameters()
        if id(p) not in in_blocks and not p.requires_grad
    )
    config = transformer.config
    tokens = max(section_tokens(section, config.patch_size) for section in sections)
    activation_bytes = 4 if full_precision else 2
    hidden_dim = config.num_attention_heads * config.attention_head_dim

    def estimate(swap: int) -> MemoryEstimate:
        return estimate_peak(
            blocks, other, trained, settings, tokens, hidden_dim, activation_bytes, swap, shards
        )

    return estimate, tokens


def check_memory(
    transformer: nn.Module,
    trained: Sequence[nn.Parameter],
    settings: TrainingSettings,
    sections: Sequence[DatasetSection],
    device: torch.device,
    card_bytes: int | None = None,
    most_swapped: int | None = None,
    shards: int = 1,
) -> MemoryEstimate | None:
    """Raise EngineError when the estimated peak exceeds the card; returns the estimate.

    card_bytes: the memory this training may use; by default see `_memory_for_training`. On a
    CPU there is nothing to check. most_swapped: the most blocks that may be swapped (default
    all but one; a full fine-tune swaps only its frozen blocks).
    """
    if device.type != "cuda" and card_bytes is None:
        logger.debug("training on %s: no GPU memory to check", device)
        return None
    if card_bytes is None:
        card_bytes = _memory_for_training(transformer, device)
    full_precision = settings.mixed_precision == "no" or device.type == "cpu"
    estimate, tokens = training_estimator(
        transformer, trained, settings, sections, full_precision, shards
    )
    planned = estimate(settings.blocks_to_swap)
    logger.info(
        "estimated peak GPU memory: %s; the card has %.1f GiB (this training %s)",
        planned.describe(),
        card_bytes / GIB,
        cards_fitting(planned.total),
    )
    if planned.total <= card_bytes:
        return planned
    most = len(transformer.blocks) - 1 if most_swapped is None else most_swapped
    fitting = next(
        (
            n
            for n in range(settings.blocks_to_swap + 1, most + 1)
            if estimate(n).total <= card_bytes
        ),
        None,
    )
    advice = (
        f"set [training] blocks_to_swap = {fitting} (the smallest that fits)"
        if fitting is not None
        else f"even blocks_to_swap = {most} does not fit: lower the sections' resolution or "
        "frames, or set gradient_checkpointing_cpu_offload = true and optimizer = 'adamw8bit'"
    )
    if settings.network == "full":
        advice += (
            "; a full fine-tune also shrinks with full_dtype = 'bf16' or fewer full_blocks "
            "(the frozen blocks can then be fp8_base and swapped)"
        )
    raise EngineError(
        f"wan_lora.toml: this training needs about {planned.describe()} of GPU memory at its "
        f"largest batch ({tokens} tokens), but the card has {card_bytes / GIB:.1f} GiB for it. "
        f"{advice}."
    )
