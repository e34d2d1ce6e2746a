"""A saved training state restores an 8-bit optimizer exactly: its quantized state is nested."""

import pytest
import torch

from wan_lora_dagster.engines.diffusers.training_state import (
    LoopPosition,
    StateStore,
    TrainingComponents,
)

bitsandbytes = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")


def components(seed: int) -> TrainingComponents:
    torch.manual_seed(seed)
    parameter = torch.nn.Parameter(torch.randn(64, 4096))
    optimizer = bitsandbytes.optim.AdamW8bit([parameter], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return TrainingComponents([parameter], optimizer, scheduler, torch.Generator().manual_seed(1))


def step(parts: TrainingComponents, seed: int) -> None:
    parts.parameters[0].grad = torch.randn(64, 4096, generator=torch.Generator().manual_seed(seed))
    parts.optimizer.step()


def test_an_8bit_adamw_state_saved_and_restored_steps_on_identically(tmp_path):
    original = components(0)
    step(original, 1)
    store = StateStore(tmp_path, "lora", "identity")
    store.save(LoopPosition.start(42), original)

    restored = components(5)  # other weights and a fresh optimizer
    _, folder = store.latest()
    store.restore(folder, restored)
    step(original, 2)
    step(restored, 2)

    assert torch.equal(original.parameters[0], restored.parameters[0])
