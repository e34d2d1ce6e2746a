"""`gradient_checkpointing_cpu_offload`: the checkpointed activations kept in CPU memory.

With gradient checkpointing, what stays on the GPU between forward and backward is each block's
input hidden states (batch x tokens x dim, one per block: 1.4 GiB for the 14B at 384x208x45).
Here each block runs without autograd in forward, its input parked in pinned CPU memory (an
asynchronous copy on the compute stream); in backward the input comes back, the block runs again
with autograd and is differentiated at once. Only the parked input crosses to the CPU: the
gradient flowing between blocks stays on the GPU. The shared inputs (text, timestep projection,
rotary tables) are the same tensors for every block and stay where they are.
"""

from __future__ import annotations

import torch
from torch import nn


def _park(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.device.type != "cuda":
        return tensor.detach().clone()  # a CPU run: the same steps, nothing to save
    parked = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    return parked.copy_(tensor, non_blocking=True)


class _HostCheckpoint(torch.autograd.Function):
    """block(hidden_states, *shared), recomputed from a CPU copy of hidden_states in backward.

    `anchor` is an empty tensor that requires grad, so that the output does too even where the
    block's input does not (the first block): the LoRA inside still gets its gradient.
    """

    @staticmethod
    def forward(ctx, anchor, block, hidden_states, *shared):
        ctx.block, ctx.shared, ctx.device = block, shared, hidden_states.device
        ctx.input_needs_grad = hidden_states.requires_grad
        ctx.parked = _park(hidden_states)
        with torch.no_grad():
            return block(hidden_states, *shared)

    @staticmethod
    def backward(ctx, output_grad):
        hidden_states = ctx.parked.to(ctx.device, non_blocking=True)
        hidden_states.requires_grad_(ctx.input_needs_grad)
        with torch.enable_grad():
            output = ctx.block(hidden_states, *ctx.shared)
        torch.autograd.backward(output, output_grad)
        input_grad = hidden_states.grad if ctx.input_needs_grad else None
        return None, None, input_grad, *([None] * len(ctx.shared))


def checkpoint_with_inputs_on_host(block: nn.Module, hidden_states: torch.Tensor, *shared):
    """A `gradient_checkpointing_func` for diffusers' `enable_gradient_checkpointing`. The shared
    inputs must need no gradient (they come from frozen layers): refused otherwise."""
    if any(isinstance(value, torch.Tensor) and value.requires_grad for value in shared):
        raise ValueError("gradient_checkpointing_cpu_offload: a shared block input needs grad")
    anchor = torch.empty(0, device=hidden_states.device, requires_grad=True)
    return _HostCheckpoint.apply(anchor, block, hidden_states, *shared)
