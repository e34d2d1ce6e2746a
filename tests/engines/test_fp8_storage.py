"""fp8_base's storage of a linear: the plain cast, and fp8_scaled's one scale per output row."""

import pytest
import torch
from torch import nn

from wan_lora_dagster.engines.fp8 import (
    FP8,
    Fp8RowScaledLinear,
    Fp8StoredLinear,
    store_linears_in_fp8,
)

pytestmark = pytest.mark.fast


def _linear(std: float) -> nn.Linear:
    torch.manual_seed(0)
    linear = nn.Linear(256, 128)
    nn.init.normal_(linear.weight, std=std)
    return linear.requires_grad_(False)


def _error(std: float, scaled: bool) -> float:
    reference = _linear(std)
    stored = _linear(std)
    store_linears_in_fp8(nn.ModuleList([stored]), torch.float32, scaled)
    inputs = torch.randn(32, 256)
    exact = reference(inputs) - reference.bias
    difference = stored(inputs) - reference(inputs)
    return (difference.norm() / exact.norm()).item()


def test_fp8_scaled_stores_fp8_values_with_one_scale_per_output_row():
    linear = _linear(0.01)
    largest_per_row = linear.weight.abs().amax(dim=1)
    assert store_linears_in_fp8(nn.ModuleList([linear]), torch.bfloat16, scaled=True) == 1
    assert type(linear) is Fp8RowScaledLinear
    assert linear.weight.dtype == FP8
    assert linear.weight_scale.shape == (128,)
    # each row's largest weight maps to e4m3's largest value, 448
    assert torch.allclose(linear.weight_scale * 448, largest_per_row)
    assert "weight_scale" not in linear.state_dict()  # never saved as a model weight


@pytest.mark.parametrize("std", [0.005, 0.014])
def test_the_row_scales_keep_small_weights_out_of_the_subnormal_range(std):
    """Wan's linears hold weights of about these sizes: cast unscaled, most land among e4m3's
    subnormals (below 2^-6), where fewer bits are left."""
    scaled, cast = _error(std, scaled=True), _error(std, scaled=False)
    assert scaled < 0.04
    assert scaled < cast * 0.8


def test_without_fp8_scaled_the_cast_is_as_before():
    linear = _linear(0.01)
    expected = linear.weight.to(FP8)
    store_linears_in_fp8(nn.ModuleList([linear]), torch.float32)
    assert type(linear) is Fp8StoredLinear
    assert torch.equal(linear.weight.view(torch.uint8), expected.view(torch.uint8))
