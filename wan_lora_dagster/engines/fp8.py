"""Base weights stored in fp8 and computed in bf16, in a form `torch.compile` traces cleanly.

diffusers' `enable_layerwise_casting` does the same with hooks that reassign `weight.data` before
and after each layer: a compiled block cannot trace those (each one is a graph break). Here each
linear of the repeated blocks keeps its weight in float8_e4m3fn and upcasts it inside its own
forward, one elementwise op that the compiler fuses or schedules like any other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn


class Fp8StoredLinear(nn.Linear):
    """An nn.Linear whose weight is stored in fp8 and computed in `compute_dtype`.

    peft reads `compute_dtype` (meant for bitsandbytes layers) before the weight's dtype when it
    builds a LoRA on this layer, so the LoRA is created in a dtype that computes, not in fp8.
    """

    compute_dtype: torch.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        return F.linear(x.to(self.compute_dtype), self.weight.to(self.compute_dtype), bias)


def store_linears_in_fp8(blocks: nn.Module, compute_dtype: torch.dtype) -> int:
    """Turn every nn.Linear under `blocks` into an Fp8StoredLinear; returns how many.

    Rounds each weight to fp8 once (the same rounding layerwise casting does); biases, norms and
    everything outside the linears keep `compute_dtype`.
    """
    converted = 0
    for module in blocks.modules():
        if type(module) is nn.Linear:
            module.weight.data = module.weight.data.to(FP8)
            module.__class__ = Fp8StoredLinear
            module.compute_dtype = compute_dtype
            converted += 1
    return converted
