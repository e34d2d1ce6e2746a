"""The diffusers engine's speed and memory options on a CPU with the tiny model: each refusal,
the same LoRA with and without block swapping and activation offloading, everything together
under torch.compile without recompiles, and the memory check's refusals on a given card size."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from wan_lora_dagster.engines.diffusers.acceleration.compile import BACKEND_VARIABLE, compile_counts
from wan_lora_dagster.engines.diffusers.acceleration.memory_estimate import (
    check_memory,
    estimate_peak,
    section_tokens,
)
from wan_lora_dagster.engines.diffusers.lora_network import training_adapter
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.datasets import DatasetSection

STEPS = 3


def train(engine, training_run, tmp_path, progress=lambda p: None, **options):
    settings = training_run.request.settings.model_copy(
        update={"max_train_steps": STEPS, "save_every_n_epochs": None, **options}
    )
    request = replace(training_run.request, settings=settings, output_dir=tmp_path)
    return load_file(engine.train(request, progress, lambda c: None)[-1].path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"blocks_to_swap": 1, "gradient_checkpointing": False}, "needs gradient_checkpointing"),
        ({"gradient_checkpointing_cpu_offload": True, "gradient_checkpointing": False},
         "needs gradient_checkpointing"),
        ({"blocks_to_swap": 2}, "has 2 transformer blocks: swap at most 1"),
        ({"optimizer": "prodigy"}, "use 'adamw' or 'adamw8bit'"),
    ],
)  # fmt: skip
def test_combinations_that_cannot_work_are_refused_before_any_file(
    engine, training_run, tmp_path, options, message
):
    with pytest.raises(EngineError, match=message):
        train(engine, training_run, tmp_path, **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options",
    [{"blocks_to_swap": 1}, {"gradient_checkpointing_cpu_offload": True}],
    ids=["blocks_to_swap", "cpu_offload"],
)
def test_swapping_and_offloading_train_the_same_lora(engine, training_run, tmp_path, options):
    plain = train(engine, training_run, tmp_path / "plain")
    moved = train(engine, training_run, tmp_path / "moved", **options)
    assert plain.keys() == moved.keys()
    assert all(torch.equal(plain[key], moved[key]) for key in plain)


def test_every_option_together_compiles_once_per_shape(engine, training_run, tmp_path, monkeypatch):
    """compile + fp8 base + block swap + activation offload + 8-bit AdamW: trains, and the steps
    after the first compile nothing new (dynamo's counters)."""
    monkeypatch.setenv(BACKEND_VARIABLE, "aot_eager")  # inductor's C++ builds are for GPUs
    counts = []
    lora = train(
        engine, training_run, tmp_path, lambda p: counts.append(compile_counts()),
        compile=True, fp8_base=True, blocks_to_swap=1, gradient_checkpointing_cpu_offload=True,
        optimizer="adamw8bit",
    )  # fmt: skip
    assert counts[0]["unique_graphs"] >= 1
    assert counts[-1] == counts[0]
    assert all(torch.isfinite(value).all() for value in lora.values())


def test_tokens_follow_the_vae_and_patch_strides():
    motion = DatasetSection(source="clips", resolution=(384, 208), target_frames=(45,))
    stills = DatasetSection(source="stills", resolution=(768, 768), batch_size=2)
    assert section_tokens(motion, (1, 2, 2)) == 12 * 13 * 24
    assert section_tokens(stills, (1, 2, 2)) == 2 * 48 * 48


def test_the_memory_check_refuses_a_card_too_small_and_says_what_to_change(engine, training_run):
    """A given card size (as the GPU's free memory would be): too small is refused naming the
    estimate, the card and the advice; a CPU without a card size is not checked. (The tiny
    model's two blocks cannot show a saving from swapping: the one swapped block is always the
    next one needed.)"""
    transformer, settings = engine.models.transformer, training_run.request.settings
    sections, cpu = training_run.request.sections, torch.device("cpu")
    with training_adapter(transformer, settings, False) as trained:
        fits = check_memory(transformer, trained, settings, sections, cpu, card_bytes=2**40)
        with pytest.raises(EngineError, match=r"needs about .* GiB.*card has [\d.]+ GiB.*even "):
            check_memory(transformer, trained, settings, sections, cpu, card_bytes=fits.total - 1)
        assert check_memory(transformer, trained, settings, sections, cpu) is None
        swapped = estimate_peak(transformer.blocks, 0, trained, settings, 12, 16, 4, 1)
        plain = estimate_peak(transformer.blocks, 0, trained, settings, 12, 16, 4, 0)
        assert swapped.weights == plain.weights
