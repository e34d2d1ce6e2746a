"""The memory check of a full fine-tune, on the real 1.3B and 14B shapes (built on the meta
device: no weights), at 384x208x45: which card each configuration fits before the first step."""

import pytest

from wan_lora_dagster.engines.diffusers.acceleration.memory_estimate import (
    GIB,
    cards_fitting,
    training_estimator,
)
from wan_lora_dagster.engines.diffusers.full_training import FULL_DTYPES, trained_linears
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.full_fine_tune import meta_transformer

pytestmark = pytest.mark.fast

MOTION = DatasetSection(name="motion", source="clips", resolution=(384, 208), target_frames=(45,))


def estimated_gib(task: str, **options) -> float:
    """The peak the check estimates for a bf16 model whose trained linears are in full_dtype,
    as full_training.full_trainable leaves them."""
    settings = TrainingSettings(task=task, network="full", **options)
    model = meta_transformer(task)
    trained = []
    for linear in trained_linears(model, settings).values():
        for parameter in linear.parameters(recurse=False):
            parameter.data = parameter.data.to(FULL_DTYPES[settings.full_dtype])
            trained.append(parameter.requires_grad_(True))
    estimate, tokens = training_estimator(model, trained, settings, (MOTION,), False)
    assert tokens == 3744
    return estimate(settings.blocks_to_swap).total / GIB


EIGHT_BIT = {"optimizer": "adamw8bit"}
BF16_8BIT = {"full_dtype": "bf16", **EIGHT_BIT}
HALF_14B = {"full_blocks": tuple(range(20)), "blocks_to_swap": 10}
ALL_14B = {"full_blocks": tuple(range(40)), "gradient_checkpointing_cpu_offload": True}


@pytest.mark.parametrize(
    ("task", "options", "low", "high", "fits"),
    [
        ("t2v-1.3B", {}, 24, 28, "fits a 80 GB or 141 GB card, not 24 GB"),
        ("t2v-1.3B", EIGHT_BIT, 16, 18, "fits a 24 GB or 80 GB or 141 GB card"),
        ("t2v-1.3B", BF16_8BIT, 10, 12, "fits a 24 GB or 80 GB or 141 GB card"),
        ("t2v-14B", {}, 240, 260, "fits none of the 24 GB, 80 GB, 141 GB cards"),
        ("t2v-14B", {**BF16_8BIT, **ALL_14B}, 90, 98,
         "fits a 141 GB card, not 24 GB, 80 GB"),
        ("t2v-14B", {**BF16_8BIT, **HALF_14B}, 56, 64,
         "fits a 80 GB or 141 GB card, not 24 GB"),
    ],
)  # fmt: skip
def test_what_fits_on_which_card(task, options, low, high, fits):
    gib = estimated_gib(task, **options)
    assert low < gib < high
    assert cards_fitting(int(gib * GIB)) == fits


def test_the_trained_weights_dominate_and_scale_with_their_dtype_and_optimizer():
    fp32_adamw = estimated_gib("t2v-1.3B")
    fp32_8bit = estimated_gib("t2v-1.3B", **EIGHT_BIT)
    bf16_8bit = estimated_gib("t2v-1.3B", full_dtype="bf16", **EIGHT_BIT)
    assert fp32_adamw > fp32_8bit > bf16_8bit  # 16, 10 and 6 bytes a trained parameter
