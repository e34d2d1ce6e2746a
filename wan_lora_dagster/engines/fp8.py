"""Base weights stored in fp8 and computed in bf16, in a form `torch.compile` traces cleanly.

diffusers' `enable_layerwise_casting` does the same with hooks that reassign `weight.data` before
and after each layer: a compiled block cannot trace those (each one is a graph break). Here each
linear of the repeated blocks keeps its weight in float8_e4m3fn and upcasts it inside its own
forward, one elementwise op that the compiler fuses or schedules like any other.

`fp8_scaled = true` stores each weight with one fp32 scale per output row (its largest magnitude
maps to e4m3's largest value), as musubi-tuner's `--fp8_scaled` scales blocks of weights: a plain
cast puts most of a Wan linear's small weights in e4m3's subnormal range, where fewer bits are
left (benchmarks/README.md, same_math_gpu.py, has the errors of both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
SMALLEST_AMAX = 1e-12  # a row of zeros keeps a finite scale (and quantizes to zeros)


def quantize_rowwise(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) -> its fp8 values (M, K, row-major) and fp32 scales (M, 1), rows ~ values * scales:
    each row's largest magnitude maps to fp8's largest value."""
    wide = rows.float()
    scales = wide.abs().amax(dim=-1, keepdim=True).clamp_min(SMALLEST_AMAX) / FP8_MAX
    values = (wide / scales).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return values.contiguous(), scales


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear's (N, K) weight -> fp8 (N, K) and one fp32 scale per output row, shape (N,)."""
    values, scales = quantize_rowwise(weight)
    return values, scales.squeeze(1)


class Fp8StoredLinear(nn.Linear):
    """An nn.Linear whose weight is stored in fp8 and computed in `compute_dtype`.

    peft reads `compute_dtype` (meant for bitsandbytes layers) before the weight's dtype when it
    builds a LoRA on this layer, so the LoRA is created in a dtype that computes, not in fp8.
    """

    compute_dtype: torch.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        return F.linear(x.to(self.compute_dtype), self.weight.to(self.compute_dtype), bias)


class Fp8RowScaledLinear(Fp8StoredLinear):
    """An Fp8StoredLinear whose fp8 weight stands for `weight * weight_scale[:, None]`.

    The scale is a buffer: block swapping moves the weight parameter and leaves the (small)
    scale on the GPU; fp8_compute hands it to the fp8 GEMM as the weight's row scale.
    """

    weight_scale: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        weight = (self.weight.float() * self.weight_scale[:, None]).to(self.compute_dtype)
        return F.linear(x.to(self.compute_dtype), weight, bias)


def store_linears_in_fp8(
    blocks: nn.Module, compute_dtype: torch.dtype, scaled: bool = False
) -> int:
    """Turn every nn.Linear under `blocks` into an Fp8StoredLinear (Fp8RowScaledLinear where
    `scaled`); returns how many.

    Rounds each weight to fp8 once: unscaled, the rounding layerwise casting does; scaled, with
    one scale per output row. Biases, norms and everything outside the linears keep
    `compute_dtype`.
    """
    converted = 0
    for module in blocks.modules():
        if type(module) is nn.Linear:
            if scaled:
                values, scale = quantize_weight(module.weight.data)
                module.weight.data = values
                module.register_buffer("weight_scale", scale, persistent=False)
                module.__class__ = Fp8RowScaledLinear
            else:
                module.weight.data = module.weight.data.to(FP8)
                module.__class__ = Fp8StoredLinear
            module.compute_dtype = compute_dtype
            converted += 1
    return converted
