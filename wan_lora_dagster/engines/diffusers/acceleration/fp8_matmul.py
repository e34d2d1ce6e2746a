"""The frozen base's matmuls on fp8 tensor cores: `y = x W^T` in forward and `dx = dy W` in
backward, through `torch._scaled_mm` (built into torch) with rowwise scales.

Rowwise (one fp32 scale per row of each operand) rather than one scale per tensor: an outlier
token or output channel then costs precision only in its own row. Activations and gradients are
quantized on the fly to float8_e4m3fn; e4m3 rather than e5m2 for the gradient too, because the
per-row scale already gives it its range and e4m3 keeps one more bit of mantissa.

Layouts: the fp8 GEMM takes its first operand row-major and its second column-major. Forward's
second operand W^T is the stored (N, K) weight viewed transposed: no copy. Backward's second
operand is W itself, which must then be column-major: a transposed copy of the fp8 weight is made
per linear inside backward and dropped after it (N x K bytes; for the 14B about 13 GB of copying
per step, a few milliseconds of memory bandwidth) rather than stored beside the weight, which
would double the base's memory (the 14B with block swapping must stay under 20 GiB).

The weight's scale is per output row (N). In backward the product runs over N, where a per-row
scale cannot sit outside the matmul: it is folded into the gradient before that is quantized
(`dy * scale`), and the weight's operand scale is one.
"""

from __future__ import annotations

import torch

from wan_lora_dagster.engines.fp8 import quantize_rowwise


def dequantize_weight(values: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype):
    """What the fp8 weight stands for, in `dtype` (the reference the fp8 matmuls are tested on)."""
    return (values.float() * scales[:, None]).to(dtype)


def fp8_forward(inputs: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor):
    """inputs (M, K) @ weight (N, K)^T -> (M, N) in the inputs' dtype."""
    values, scales = quantize_rowwise(inputs)
    return torch._scaled_mm(
        values,
        weight.t(),  # column-major (K, N): the stored weight as it is
        scale_a=scales,
        scale_b=weight_scale.view(1, -1),
        out_dtype=inputs.dtype,
    )


def fp8_input_gradient(grad: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor):
    """grad (M, N) @ weight (N, K) -> (M, K) in the gradient's dtype; the weight's row scales
    folded into the gradient (they lie along the summed dimension)."""
    values, scales = quantize_rowwise(grad.float() * weight_scale)
    column_major = weight.t().contiguous().t()  # (N, K) with strides (1, N): transient
    ones = torch.ones(1, weight.shape[1], device=weight.device, dtype=torch.float32)
    return torch._scaled_mm(
        values, column_major, scale_a=scales, scale_b=ones, out_dtype=grad.dtype
    )


class Fp8Linear(torch.autograd.Function):
    """x @ W^T for a frozen fp8 weight: forward and the activation gradient in fp8. No gradient
    for the weight or its scale (the base is frozen), so x itself is not kept for backward."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor):
        ctx.save_for_backward(weight, weight_scale)
        rows = inputs.reshape(-1, inputs.shape[-1])
        return fp8_forward(rows, weight, weight_scale).view(*inputs.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        weight, weight_scale = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1])
        grad_inputs = fp8_input_gradient(rows, weight, weight_scale)
        return grad_inputs.view(*grad.shape[:-1], weight.shape[1]), None, None


def fp8_linear(inputs, weight, weight_scale, bias=None) -> torch.Tensor:
    """F.linear's contract with an fp8 weight and its (N,) scales; the bias added in the
    inputs' dtype, outside the GEMM (fused by the compiler)."""
    out = Fp8Linear.apply(inputs, weight, weight_scale)
    return out if bias is None else out + bias.to(out.dtype)
