"""The diffusers engine's speed and memory options on a GPU at the real t2v-1.3B shapes: a few
steps with each option and with all of them (fp8_compute alone and with the others, on a card of
compute capability 8.9 or newer), each checkpoint loaded by diffusers' `load_lora_weights`.

Opt-in (`-m gpu`): needs CUDA. The model folder is the tiny model's with its transformer replaced
by a random-weight one of the 1.3B's shapes (2.8 GB, built once per session; training reads only
the transformer); the caches are random latents of 384x208x45 and random text embeddings.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.engines.diffusers.acceleration.fp8_compute import FP8_TENSOR_CORES
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.formats.cache_files import latent_cache_name, text_cache_name
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import save_latent_cache, save_text_cache
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (torch.cuda.is_available() is False)",
    ),
]

SECTION = DatasetSection(name="motion", source="clips", resolution=(384, 208), target_frames=(45,))
OPTIONS = {
    "plain": {},
    "compile": {"compile": True},
    "fp8_base": {"fp8_base": True},
    "blocks_to_swap": {"blocks_to_swap": 10},
    "cpu_offload": {"gradient_checkpointing_cpu_offload": True},
    "adamw8bit": {"optimizer": "adamw8bit"},
    "everything": {
        "compile": True,
        "fp8_base": True,
        "blocks_to_swap": 10,
        "gradient_checkpointing_cpu_offload": True,
        "optimizer": "adamw8bit",
    },
    "fp8_compute": {"fp8_compute": True},
    "fp8_compute_everything": {
        "fp8_compute": True,
        "compile": True,
        "fp8_base": True,
        "blocks_to_swap": 10,
        "gradient_checkpointing_cpu_offload": True,
    },
}


@pytest.fixture(scope="session")
def real_shape_model(tiny_model_dir, tmp_path_factory):
    """The tiny folder with a transformer of the 1.3B's shapes, random weights."""
    from diffusers import WanTransformer3DModel

    folder = tmp_path_factory.mktemp("models") / "wan-1.3B-random"
    shutil.copytree(tiny_model_dir, folder)
    shutil.rmtree(folder / "transformer")
    with torch.device("cuda"):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
            in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960,
            num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
        )  # fmt: skip
    transformer.to(torch.bfloat16).save_pretrained(folder / "transformer")
    return folder


@pytest.fixture(scope="session")
def real_shape_caches(tmp_path_factory) -> TrainingSetManifest:
    root = tmp_path_factory.mktemp("caches")
    generator = torch.Generator().manual_seed(0)
    entries = []
    for index in range(2):
        item = f"clip{index:02d}"
        latent = root / "latents" / latent_cache_name(item, 384, 208, 0, 45)
        save_latent_cache(latent, torch.randn(16, 12, 26, 48, generator=generator))
        text = root / "texts" / text_cache_name(item)
        save_text_cache(text, torch.randn(24, 4096, generator=generator).bfloat16())
        entries.append(
            ManifestEntry(
                item_id=item,
                kind="clip",
                section=SECTION.name,
                latent_files=(str(latent.relative_to(root)),),
                text_file=str(text.relative_to(root)),
                caption="random",
                caption_origin="auto",
                caption_version="c",
                latent_version="l",
                text_version="t",
            )
        )
    return TrainingSetManifest(tuple(entries), root=root)


NEEDS_FP8_TENSOR_CORES = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < FP8_TENSOR_CORES,
    reason="fp8_compute needs compute capability 8.9 or newer",
)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(
            options, id=name, marks=NEEDS_FP8_TENSOR_CORES if options.get("fp8_compute") else ()
        )
        for name, options in OPTIONS.items()
    ],
)
def test_options_train_at_real_shapes_and_the_lora_loads_in_diffusers(
    real_shape_model, real_shape_caches, tmp_path, options
):
    from diffusers import WanPipeline

    settings = TrainingSettings(
        model=str(real_shape_model), network_dim=32, network_alpha=32.0, max_train_steps=3,
        **options,
    )  # fmt: skip
    engine = DiffusersEngine(settings, models_dir=tmp_path / "unused", device="cuda")
    request = TrainRequest(real_shape_caches, settings, (SECTION,), tmp_path, "gpu", {})
    losses = []

    checkpoints = engine.train(request, lambda p: losses.append(p.loss), lambda c: None)

    assert all(loss is not None and math.isfinite(loss) for loss in losses)
    assert all(p.device.type == "cuda" for p in engine.models.transformer.parameters())
    del engine
    torch.cuda.empty_cache()
    pipeline = WanPipeline.from_pretrained(real_shape_model, torch_dtype=torch.bfloat16)
    pipeline.load_lora_weights(str(checkpoints[-1].path), adapter_name="trained")
    assert "trained" in pipeline.get_list_adapters()["transformer"]


def test_a_card_too_small_is_refused_before_the_first_step(
    real_shape_model, real_shape_caches, tmp_path
):
    """The check reads the card's free memory: hold all but 2 GiB of it, and training refuses."""
    from wan_lora_dagster.errors import EngineError

    settings = TrainingSettings(model=str(real_shape_model), max_train_steps=1)
    engine = DiffusersEngine(settings, models_dir=tmp_path / "unused", device="cuda")
    _ = engine.models.transformer  # loaded before the card fills up
    free, _ = torch.cuda.mem_get_info()
    ballast = torch.empty(free - 2 * 1024**3, dtype=torch.uint8, device="cuda")
    request = TrainRequest(real_shape_caches, settings, (SECTION,), tmp_path, "gpu", {})
    try:
        with pytest.raises(EngineError, match="GPU memory"):
            engine.train(request, lambda p: None, lambda c: None)
    finally:
        del ballast
    assert not list(tmp_path.glob("*.safetensors"))


def test_a_cancelled_run_with_every_option_resumes_to_the_uninterrupted_lora(
    real_shape_model, real_shape_caches, tmp_path
):
    """Cancel after step 3 of 6 (compiled, fp8, swapped, 8-bit AdamW), call train again: it goes
    on from step 4 and ends where an uninterrupted run ends. GPU kernels are not bitwise
    deterministic (attention's backward sums in any order), so "where" is within a small fraction
    of how far the LoRA moved from its start."""
    from safetensors.torch import load_file

    from wan_lora_dagster.errors import EngineCancelled

    settings = TrainingSettings(
        model=str(real_shape_model), network_dim=32, network_alpha=32.0, max_train_steps=6,
        save_every_n_steps=2, learning_rate=1e-3, **OPTIONS["everything"],
    )  # fmt: skip
    engine = DiffusersEngine(settings, models_dir=tmp_path / "unused", device="cuda")

    def train(output, progress):
        request = TrainRequest(real_shape_caches, settings, (SECTION,), output, "gpu", {})
        return engine.train(request, progress, lambda c: None)

    uninterrupted = train(tmp_path / "whole", lambda p: None)

    def cancel_after_three(report):
        if report.done == 3:
            raise EngineCancelled("cancelled")

    with pytest.raises(EngineCancelled):
        train(tmp_path / "resumed", cancel_after_three)
    kept = (tmp_path / "resumed" / "gpu-step00000002.safetensors").read_bytes()
    steps = []
    resumed = train(tmp_path / "resumed", lambda report: steps.append(report.done))

    assert steps == [4, 5, 6], "training went on from the cancelled step"
    assert [c.path.name for c in resumed] == [c.path.name for c in uninterrupted]
    assert resumed[0].path.read_bytes() == kept, "a kept checkpoint was rewritten"
    whole, again = load_file(uninterrupted[-1].path), load_file(resumed[-1].path)
    ups = [key for key in whole if "lora_up" in key]  # zero at the start: all of it is training
    moved = torch.stack([whole[key].float().norm() for key in ups]).norm()
    apart = torch.stack([(whole[key].float() - again[key].float()).norm() for key in ups]).norm()
    assert moved > 0
    assert apart <= 0.05 * moved, f"resumed LoRA {apart:.3g} from the uninterrupted ({moved:.3g})"
