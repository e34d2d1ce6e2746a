"""`[training] gpus`: what a step and an epoch mean on N GPUs, and what a LoRA's header says."""

import json

import pytest

from wan_lora_dagster.engines.gpus import batch_metadata, require_gpus, resolve_gpus
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings


def test_the_header_says_the_batch_of_a_step():
    sections = [
        DatasetSection(name="clips", source="clips", resolution=(384, 208), batch_size=1),
        DatasetSection(name="stills", source="stills", resolution=(768, 768), batch_size=4),
    ]

    header = batch_metadata(sections, 2)

    assert header["ss_total_batch_size"] == "8"
    assert header["wan_lora.gpus"] == "2"
    assert json.loads(header["wan_lora.effective_batch_size"]) == {"clips": 2, "stills": 8}


def test_gpus_takes_a_count_or_all_and_refuses_more_than_the_machine_has():
    assert resolve_gpus(TrainingSettings(gpus=2)) == 2
    assert resolve_gpus(TrainingSettings(gpus="all")) >= 1
    with pytest.raises(ValueError, match="gpus"):
        TrainingSettings(gpus=0)
    with pytest.raises(ConfigError, match=r"gpus = 4, but this machine has 2"):
        require_gpus(4, available=2)
