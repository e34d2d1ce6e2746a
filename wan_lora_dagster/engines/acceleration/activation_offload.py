"""`gradient_checkpointing_cpu_offload`: the checkpointed activations kept in CPU memory.

With gradient checkpointing, what stays on the GPU between forward and backward is each block's
input hidden states (batch x tokens x dim, one per block: 1.4 GiB for the 14B at 384x208x45).
Each block's input is parked in pinned CPU memory and checkpointed there; the block's forward
(first run and recomputation alike) copies it back to the GPU first. The shared inputs (text,
timestep projection, rotary embedding) are the same tensors for every block and stay.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class _ToHost(torch.autograd.Function):
    """A copy in (pinned) CPU memory; its gradient goes back to the tensor's device."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.device = tensor.device
        if tensor.device.type != "cuda":
            return tensor.detach().clone()  # a CPU run: the same steps, nothing to save
        parked = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        return parked.copy_(tensor, non_blocking=True)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.to(ctx.device, non_blocking=True)


def _on_device(block: nn.Module, device: torch.device, hidden_states: torch.Tensor, *rest):
    return block(hidden_states.to(device, non_blocking=True), *rest)


def checkpoint_with_inputs_on_host(block: nn.Module, hidden_states: torch.Tensor, *rest):
    """A `gradient_checkpointing_func` for diffusers' `enable_gradient_checkpointing`."""
    parked = _ToHost.apply(hidden_states)
    run = partial(_on_device, block, hidden_states.device)
    return checkpoint(run, parked, *rest, use_reentrant=False)
