"""fp8_compute's matmuls on a real card: the 14B's feed-forward linear at 384x208x45's tokens,
eager and compiled with inductor, against bf16's F.linear (training with the option at the 1.3B's
shapes is in test_acceleration_gpu.py).

Opt-in (`-m gpu`): needs a CUDA GPU of compute capability 8.9 or newer.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wan_lora_dagster.engines.diffusers.acceleration.fp8_compute import (
    FP8_TENSOR_CORES,
    cuda_capability,
)
from wan_lora_dagster.engines.diffusers.acceleration.fp8_matmul import fp8_linear
from wan_lora_dagster.engines.fp8 import quantize_weight

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or torch.cuda.get_device_capability() < FP8_TENSOR_CORES,
        reason="needs a CUDA GPU with fp8 tensor cores (compute capability 8.9 or newer)",
    ),
]

TOKENS, DIM, FFN = 3744, 5120, 13824


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "inductor"])
def test_the_fp8_linear_matches_bf16_at_the_14bs_shapes(compiled):
    torch.manual_seed(0)
    weight = torch.randn(FFN, DIM, device="cuda", dtype=torch.bfloat16) * DIM**-0.5
    bias = torch.randn(FFN, device="cuda", dtype=torch.bfloat16) * 0.1
    values, scales = quantize_weight(weight)
    x = torch.randn(1, TOKENS, DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(1, TOKENS, FFN, device="cuda", dtype=torch.bfloat16)
    linear = torch.compile(fp8_linear) if compiled else fp8_linear

    out = linear(x, values, scales, bias)
    out.backward(grad)
    fp8_grad, x.grad = x.grad, None
    reference = F.linear(x, weight, bias)
    reference.backward(grad)

    assert out.dtype == fp8_grad.dtype == torch.bfloat16
    assert relative(out, reference) < 0.05
    assert relative(fp8_grad, x.grad) < 0.05


def test_the_card_is_seen_with_its_name_and_capability():
    capability = cuda_capability(torch.device("cuda"))
    assert capability is not None and capability.version >= FP8_TENSOR_CORES
    assert capability.name == torch.cuda.get_device_name()
