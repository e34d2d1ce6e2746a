"""`fp8_compute = true`: the transformer blocks' frozen base linears compute in fp8 during
training (forward, and the backward matmul that carries the gradient to the activations), at
twice the bf16 rate of Ada, Hopper and Blackwell tensor cores. The LoRA beside each base linear
(peft's lora_A/lora_B) computes as before, in its own fp32 weights.

The base is frozen, so its fp8 form is made once, when training starts (fp8_matmul says how it
computes):
- with `fp8_base`, the stored fp8 weight IS the fp8 operand (scale one, or its row scales with
  `fp8_scaled`): no copy, and the very weight values the bf16 path would upcast;
- without it, each bf16 weight is quantized with one scale per output row, and the bf16 tensor
  waits in CPU memory until training ends (only the fp8 one is used meanwhile), so the base costs
  the GPU half its bf16 memory, as with fp8_base.
The fp8 weight stays the linear's `weight` parameter, so block swapping moves it like any other
frozen weight; its row scales are a small buffer that stays on the GPU. Validation and sampling
run after training, on the weights as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from wan_lora_dagster.engines.diffusers.acceleration.fp8_matmul import fp8_linear
from wan_lora_dagster.engines.fp8 import (
    FP8,
    Fp8RowScaledLinear,
    Fp8StoredLinear,
    quantize_weight,
)
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.training import TrainingSettings

logger = logging.getLogger(__name__)

STORED_IN_FP8 = (Fp8StoredLinear, Fp8RowScaledLinear)  # fp8_base's linears
FP8_TENSOR_CORES = (8, 9)  # Ada (8.9), Hopper (9.0), Blackwell (10.x, 12.x)
GEMM_ALIGNMENT = 16  # fp8 GEMMs need both sides of the weight to be multiples of 16 elements


@dataclass(frozen=True)
class GpuCapability:
    name: str
    version: tuple[int, int]


def cuda_capability(device: torch.device) -> GpuCapability | None:
    """The CUDA device's name and compute capability; None for a device that is not a GPU."""
    if device.type != "cuda":
        return None
    return GpuCapability(
        torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)
    )


# What the device check asks; tests put a FakeCudaCapability here to play a given card on a CPU.
device_capability = cuda_capability


def require_fp8_compute(settings: TrainingSettings, device: torch.device) -> None:
    """Refuse what fp8_compute cannot work with: a device without fp8 tensor cores, and results
    in anything but bf16."""
    require_fp8_tensor_cores(device)
    if settings.mixed_precision != "bf16":
        raise EngineError(
            f"wan_lora.toml: [training] fp8_compute = true with mixed_precision = "
            f"'{settings.mixed_precision}': the fp8 matmuls write bf16 results (rowwise-scaled "
            "fp8 GEMMs have no fp16 or fp32 output), so set mixed_precision = 'bf16' or "
            "fp8_compute = false."
        )


def require_fp8_tensor_cores(device: torch.device) -> None:
    """Refuse a device without fp8 tensor cores, naming it and what to set instead."""
    capability = device_capability(device)
    if capability is None:
        raise EngineError(
            f"wan_lora.toml: [training] fp8_compute = true needs an NVIDIA GPU with fp8 tensor "
            f"cores (compute capability 8.9 or newer: RTX 40xx, RTX 6000 Ada, L4/L40, H100, "
            f"H200, Blackwell), but this run trains on the {device.type.upper()} ({device}), "
            "which has none: set fp8_compute = false."
        )
    if capability.version < FP8_TENSOR_CORES:
        major, minor = capability.version
        raise EngineError(
            f"wan_lora.toml: [training] fp8_compute = true needs fp8 tensor cores (compute "
            f"capability 8.9 or newer), but {capability.name} ({device}) has compute capability "
            f"{major}.{minor}: set fp8_compute = false (fp8_base = true still halves the "
            "weights' memory on this card)."
        )


class Fp8ComputeLinear(nn.Linear):
    """A frozen nn.Linear whose `weight` is fp8 with one fp32 scale per output row
    (`weight_scale`), computing through fp8_matmul; inputs cast to `compute_dtype` first."""

    compute_dtype: torch.dtype
    weight_scale: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x.to(self.compute_dtype), self.weight, self.weight_scale, self.bias)


@dataclass
class _Converted:
    module: nn.Linear
    original_class: type
    own_weight: torch.Tensor | None  # in CPU memory meanwhile; None: fp8 already (fp8_base)
    own_scale: bool  # fp8_base's scaled storage: its scale stays with it, none is added


def _convertible(module: nn.Module) -> bool:
    """A frozen base linear of the blocks (not a LoRA's own, trainable, linears) whose sizes
    the fp8 GEMM takes."""
    return (
        type(module) in (nn.Linear, *STORED_IN_FP8)
        and not module.weight.requires_grad
        and module.in_features % GEMM_ALIGNMENT == 0
        and module.out_features % GEMM_ALIGNMENT == 0
    )


def _to_fp8_compute(module: nn.Linear) -> _Converted:
    weight = module.weight
    compute_dtype = getattr(module, "compute_dtype", weight.dtype)  # fp8_base's, or the weight's
    if type(module) is Fp8RowScaledLinear:  # fp8_base's scaled storage, used as it is
        converted = _Converted(module, type(module), None, own_scale=True)
    elif weight.dtype == FP8:  # fp8_base's storage, used as it is
        converted = _Converted(module, type(module), None, own_scale=False)
        ones = torch.ones(weight.shape[0], device=weight.device, dtype=torch.float32)
        module.register_buffer("weight_scale", ones, persistent=False)
    else:
        values, scale = quantize_weight(weight.data)
        converted = _Converted(module, type(module), weight.data.to("cpu"), own_scale=False)
        weight.data = values
        module.register_buffer("weight_scale", scale, persistent=False)
    module.__class__ = Fp8ComputeLinear
    module.compute_dtype = compute_dtype
    return converted


def _restore(converted: _Converted) -> None:
    module = converted.module
    if converted.own_weight is not None:
        module.weight.data = converted.own_weight.to(module.weight.device)
    if not converted.own_scale:
        del module.weight_scale
    module.__class__ = converted.original_class
    if converted.original_class is nn.Linear:
        del module.compute_dtype


@contextmanager
def fp8_compute_linears(blocks: nn.ModuleList, device: torch.device) -> Iterator[int]:
    """The blocks' frozen base linears computing in fp8 while inside (yields how many);
    their own weights and classes again afterwards."""
    converted: list[_Converted] = []
    try:
        for module in list(blocks.modules()):
            if _convertible(module):
                converted.append(_to_fp8_compute(module))
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the weights now in CPU memory: their memory to the card
        kept = [
            m for m in blocks.modules()
            if type(m) in (nn.Linear, *STORED_IN_FP8) and not m.weight.requires_grad
        ]  # fmt: skip
        logger.info(
            "fp8_compute: %d base linears compute in fp8 (%d of them on fp8_base's own weights); "
            "%d keep their dtype (sizes not multiples of %d)",
            len(converted),
            sum(1 for c in converted if c.own_weight is None),
            len(kept),
            GEMM_ALIGNMENT,
        )
        yield len(converted)
    finally:
        for item in converted:
            _restore(item)
