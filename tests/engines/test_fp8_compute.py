"""`fp8_compute` on a CPU: the quantize helpers, the fp8 autograd Function against a reference,
the refusals, and training with the other options, the device played by a FakeCudaCapability
(torch's CPU build runs `torch._scaled_mm`, so the fp8 matmuls themselves run here; a CPU build
without it skips those tests and says so)."""

import logging
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from wan_lora_dagster.engines.diffusers.acceleration import fp8_compute
from wan_lora_dagster.engines.diffusers.acceleration.compile import BACKEND_VARIABLE, compile_counts
from wan_lora_dagster.engines.diffusers.acceleration.fp8_matmul import dequantize_weight, fp8_linear
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.fp8 import FP8, Fp8RowScaledLinear, quantize_rowwise, quantize_weight
from wan_lora_dagster.engines.musubi.arguments import check_settings
from wan_lora_dagster.errors import ConfigError, EngineError
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.fake_cuda import FakeCudaCapability

STEPS = 3


def _scaled_mm_runs_here() -> bool:
    try:
        one = torch.ones(16, 16).to(FP8)
        torch._scaled_mm(one, one.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16))
    except (RuntimeError, NotImplementedError):
        return False
    return True


needs_scaled_mm = pytest.mark.skipif(
    not _scaled_mm_runs_here(),
    reason="this torch build has no CPU torch._scaled_mm: the fp8 matmuls run on a GPU only",
)


@pytest.fixture
def hopper(monkeypatch):
    monkeypatch.setattr(fp8_compute, "device_capability", FakeCudaCapability((9, 0), "Fake H100"))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# ---------------------------------------------------------------- the helpers and the Function


def test_rowwise_quantization_maps_each_rows_largest_value_to_fp8s_largest():
    rows = torch.randn(8, 64) * torch.logspace(-4, 2, 8)[:, None]  # rows six decades apart
    rows[3] = 0.0
    values, scales = quantize_rowwise(rows)
    restored = values.float() * scales
    amax = rows.abs().amax(dim=1, keepdim=True)
    assert values.dtype == FP8 and scales.shape == (8, 1) and values.is_contiguous()
    assert torch.equal(values.float().abs().amax(dim=1)[[0, 1, 2, 4]], torch.full((4,), 448.0))
    assert ((restored - rows).abs() <= amax / 16).all()  # within e4m3's step at each row's top
    assert torch.equal(restored[3], torch.zeros(64)) and torch.isfinite(scales).all()


@needs_scaled_mm
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_fp8_linear_is_exact_on_its_quantized_operands_and_near_the_reference(dtype):
    """Forward: the GEMM of the quantized input and weight, exactly as their dequantized values
    multiply; backward: the gradient with the weight's row scales folded in. Against F.linear on
    the unquantized input: the error of e4m3's three mantissa bits, a few percent."""
    torch.manual_seed(0)
    weight = torch.randn(48, 64) * torch.linspace(0.01, 0.1, 48)[:, None]
    values, scales = quantize_weight(weight)
    bias = torch.randn(48).to(dtype)
    x = torch.randn(2, 10, 64, dtype=dtype, requires_grad=True)
    grad = torch.randn(2, 10, 48, dtype=dtype)
    out = fp8_linear(x, values, scales, bias)
    out.backward(grad)

    x_values, x_scales = quantize_rowwise(x.detach().reshape(-1, 64))
    exact = (x_values.float() * x_scales) @ dequantize_weight(values, scales, torch.float32).t()
    g_values, g_scales = quantize_rowwise(grad.reshape(-1, 48).float() * scales)
    exact_grad = (g_values.float() * g_scales) @ values.float()
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2  # the bf16 output's rounding
    assert out.dtype == x.grad.dtype == dtype
    assert relative(out.reshape(-1, 48) - bias, exact) < tolerance
    assert relative(x.grad.reshape(-1, 64), exact_grad) < tolerance

    reference_x = x.detach().float().requires_grad_()
    reference = F.linear(
        reference_x, dequantize_weight(values, scales, torch.float32), bias.float()
    )
    reference.backward(grad.float())
    assert relative(out, reference) < 0.05
    assert relative(x.grad, reference_x.grad) < 0.05


@needs_scaled_mm
def test_the_fp8_linear_compiles_to_the_same_values_and_skips_an_unneeded_gradient(monkeypatch):
    values, scales = quantize_weight(torch.randn(32, 16))
    x = torch.randn(5, 16, requires_grad=True)
    compiled = torch.compile(lambda inputs: fp8_linear(inputs, values, scales), backend="aot_eager")
    out = compiled(x)
    out.sum().backward()
    eager_x = x.detach().clone().requires_grad_()
    fp8_linear(eager_x, values, scales).sum().backward()
    assert torch.equal(out, fp8_linear(x.detach(), values, scales))
    assert torch.equal(x.grad, eager_x.grad)
    frozen = fp8_linear(torch.randn(5, 16), values, scales)
    assert not frozen.requires_grad


# ---------------------------------------------------------------- refusals


def train(engine, training_run, tmp_path, progress=lambda p: None, **options):
    settings = training_run.request.settings.model_copy(
        update={"max_train_steps": STEPS, "save_every_n_epochs": None, **options}
    )
    request = replace(training_run.request, settings=settings, output_dir=tmp_path)
    return load_file(engine.train(request, progress, lambda c: None)[-1].path)


def test_a_cpu_is_refused_and_named(engine, training_run, tmp_path):
    with pytest.raises(EngineError, match=r"fp8_compute = true needs an NVIDIA GPU.*on the CPU"):
        train(engine, training_run, tmp_path, fp8_compute=True)
    assert list(tmp_path.iterdir()) == []


def test_a_gpu_without_fp8_tensor_cores_is_refused_and_named(
    engine, training_run, tmp_path, monkeypatch
):
    monkeypatch.setattr(fp8_compute, "device_capability", FakeCudaCapability((8, 6), "RTX 3090"))
    with pytest.raises(EngineError, match=r"RTX 3090 \(cpu\) has compute capability 8\.6"):
        train(engine, training_run, tmp_path, fp8_compute=True)
    assert list(tmp_path.iterdir()) == []
    assert type(engine.models.transformer.blocks[0].ffn.net[2]).__name__ == "Linear"


@pytest.mark.parametrize("precision", ["fp16", "no"])
def test_fp8_compute_needs_bf16_mixed_precision(engine, training_run, tmp_path, hopper, precision):
    with pytest.raises(EngineError, match=f"mixed_precision = '{precision}'.*bf16 results"):
        train(engine, training_run, tmp_path, fp8_compute=True, mixed_precision=precision)


def test_the_musubi_engine_refuses_fp8_compute():
    settings = TrainingSettings(engine="musubi", fp8_compute=True)
    with pytest.raises(ConfigError, match="fp8_compute = true is a diffusers-engine option"):
        check_settings(settings)


def test_fp8_compute_off_leaves_the_settings_fingerprint_as_it_was():
    """Projects trained before the option existed keep their checkpoints current: the default
    settings' fingerprint is the one from before it (main at 9a4a696)."""
    plain = TrainingSettings()
    assert plain.settings_fingerprint() == "583288ea6e199a19"
    assert plain.settings_fingerprint() != TrainingSettings(fp8_compute=True).settings_fingerprint()


# ---------------------------------------------------------------- training with the other options


def _base_state(transformer) -> dict[str, torch.Tensor]:
    return {
        name: tensor.clone()
        for name, tensor in transformer.state_dict().items()
        if "lora" not in name
    }


@needs_scaled_mm
def test_fp8_compute_trains_near_the_plain_lora_and_gives_the_base_back(
    engine, training_run, tmp_path, hopper
):
    transformer = engine.models.transformer
    before = _base_state(transformer)
    plain = train(engine, training_run, tmp_path / "plain")
    fp8 = train(engine, training_run, tmp_path / "fp8", fp8_compute=True)
    after = _base_state(transformer)

    assert plain.keys() == fp8.keys()
    flat_plain = torch.cat([plain[key].flatten() for key in plain if "lora_up" in key])
    flat_fp8 = torch.cat([fp8[key].flatten() for key in plain if "lora_up" in key])
    assert torch.corrcoef(torch.stack([flat_plain, flat_fp8]))[0, 1] > 0.95
    assert not torch.equal(flat_plain, flat_fp8)  # it did compute in fp8
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert {type(m).__name__ for m in transformer.blocks.modules()} & {"Fp8ComputeLinear"} == set()


@needs_scaled_mm
def test_block_swapping_moves_the_fp8_weights_and_trains_the_same_lora(
    engine, training_run, tmp_path, hopper
):
    alone = train(engine, training_run, tmp_path / "alone", fp8_compute=True)
    swapped = train(engine, training_run, tmp_path / "swap", fp8_compute=True, blocks_to_swap=1)
    assert all(torch.equal(alone[key], swapped[key]) for key in alone)


@pytest.fixture(scope="module")
def fp8_base_engine(tiny_model_dir, training_run):
    """The tiny model loaded with fp8_base (the precision is the engine's, fixed at load)."""
    settings = training_run.request.settings.model_copy(update={"fp8_base": True})
    return DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")


@needs_scaled_mm
def test_every_option_with_fp8_compute_compiles_once_per_shape(
    fp8_base_engine, training_run, tmp_path, hopper, monkeypatch, caplog
):
    """compile + fp8_base (its fp8 weights used as they are) + fp8_compute + block swap +
    activation offload + gradient checkpointing: trains, and no step after the first compiles."""
    monkeypatch.setenv(BACKEND_VARIABLE, "aot_eager")
    caplog.set_level(logging.INFO, logger=fp8_compute.__name__)
    counts = []
    lora = train(
        fp8_base_engine, training_run, tmp_path, lambda p: counts.append(compile_counts()),
        compile=True, fp8_base=True, fp8_compute=True, blocks_to_swap=1,
        gradient_checkpointing_cpu_offload=True,
    )  # fmt: skip
    assert counts[0]["unique_graphs"] >= 1
    assert counts[-1] == counts[0]
    assert all(torch.isfinite(value).all() for value in lora.values())
    assert "20 base linears compute in fp8 (20 of them on fp8_base's own weights)" in caplog.text


@pytest.fixture(scope="module")
def fp8_scaled_engine(tiny_model_dir, training_run):
    """The tiny model loaded with fp8_base and fp8_scaled (one scale per output row)."""
    update = {"fp8_base": True, "fp8_scaled": True}
    settings = training_run.request.settings.model_copy(update=update)
    return DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")


def _scaled_linears(engine) -> dict[str, torch.Tensor]:
    return {
        name: module.weight_scale.clone()
        for name, module in engine.models.transformer.blocks.named_modules()
        if type(module) is Fp8RowScaledLinear
    }


def test_fp8_scaled_trains_nearer_the_full_precision_lora_than_the_plain_cast(
    engine, fp8_base_engine, fp8_scaled_engine, training_run, tmp_path
):
    """The row scales keep the tiny model's small weights out of e4m3's subnormal range: its
    LoRA learns nearer what the float32 base teaches than the unscaled cast's does."""
    exact = train(engine, training_run, tmp_path / "exact")
    cast = train(fp8_base_engine, training_run, tmp_path / "cast", fp8_base=True)
    scaled = train(
        fp8_scaled_engine, training_run, tmp_path / "scaled", fp8_base=True, fp8_scaled=True
    )
    ups = [key for key in exact if "lora_up" in key]
    flat = {name: torch.cat([lora[key].flatten() for key in ups]) for name, lora in
            (("exact", exact), ("cast", cast), ("scaled", scaled))}  # fmt: skip
    assert relative(flat["scaled"], flat["exact"]) < relative(flat["cast"], flat["exact"])
    assert len(_scaled_linears(fp8_scaled_engine)) == 20  # every block linear, scaled


@needs_scaled_mm
def test_fp8_compute_multiplies_by_fp8_scaleds_own_row_scales_and_leaves_them(
    fp8_scaled_engine, training_run, tmp_path, hopper, caplog
):
    caplog.set_level(logging.INFO, logger=fp8_compute.__name__)
    scales = _scaled_linears(fp8_scaled_engine)
    stored = train(fp8_scaled_engine, training_run, tmp_path / "stored", fp8_base=True,
                   fp8_scaled=True)  # fmt: skip
    fp8 = train(fp8_scaled_engine, training_run, tmp_path / "fp8", fp8_base=True,
                fp8_scaled=True, fp8_compute=True)  # fmt: skip

    assert "20 base linears compute in fp8 (20 of them on fp8_base's own weights)" in caplog.text
    ups = [key for key in stored if "lora_up" in key]
    flat_stored = torch.cat([stored[key].flatten() for key in ups])
    flat_fp8 = torch.cat([fp8[key].flatten() for key in ups])
    assert torch.corrcoef(torch.stack([flat_stored, flat_fp8]))[0, 1] > 0.95
    after = _scaled_linears(fp8_scaled_engine)
    assert after.keys() == scales.keys()
    assert all(torch.equal(after[name], scales[name]) for name in scales)
