"""The memory check of a sharded full fine-tune and of 720p x 81 frames at 14B, on the real shapes
(meta device): the figures docs/architecture.md gives for why context parallelism is not built."""

import pytest
import torch

from wan_lora_dagster.engines.diffusers.acceleration.memory_estimate import GIB, training_estimator
from wan_lora_dagster.engines.diffusers.full_training import trained_linears
from wan_lora_dagster.engines.wan_models import store_in_fp8
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.full_fine_tune import meta_transformer

pytestmark = pytest.mark.fast

HD = DatasetSection(name="hd", source="clips", resolution=(1280, 720), target_frames=(81,))


def estimate(settings: TrainingSettings, shards: int = 1):
    model = meta_transformer(settings.task)
    trained = []
    if settings.network == "full":
        for linear in trained_linears(model, settings).values():
            for parameter in linear.parameters(recurse=False):
                parameter.data = parameter.data.to(torch.float32)
                trained.append(parameter.requires_grad_(True))
    if settings.fp8_base:
        store_in_fp8(model, torch.bfloat16)
    estimator, tokens = training_estimator(model, trained, settings, (HD,), False, shards)
    assert tokens == 21 * 45 * 80  # latent frames x (720 / 16) x (1280 / 16)
    return estimator(0)


def test_the_activations_of_a_720p_81_frame_clip_fit_one_h100_only_when_parked_on_the_host():
    lora = TrainingSettings(task="t2v-14B", fp8_base=True)
    parked = lora.model_copy(update={"gradient_checkpointing_cpu_offload": True})
    assert 67 < estimate(lora).activations / GIB < 69
    assert 93 < estimate(lora).total / GIB < 95  # an H200's 139.8, not an H100's 79.2
    assert 60 < estimate(parked).total / GIB < 62


def test_sharding_divides_the_trained_state_not_the_activations():
    full = TrainingSettings(task="t2v-14B", network="full")
    whole, four, eight = estimate(full), estimate(full, 4), estimate(full, 8)
    assert 212 < whole.lora_and_optimizer / GIB < 214  # 16 bytes a trained parameter
    # a shard, plus two blocks' trained weights gathered whole in the compute dtype
    assert 27 < eight.lora_and_optimizer / GIB < 29 < four.lora_and_optimizer / GIB
    assert whole.activations == four.activations == eight.activations
    assert 110 < eight.total / GIB < 112  # an H200 each, not an H100
