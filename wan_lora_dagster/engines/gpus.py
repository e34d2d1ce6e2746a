"""How many processes train together, and the batch each step then trains on (no torch import:
the graph plans checkpoints with it; the steps they take are the training plan's)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings


def resolve_gpus(settings: TrainingSettings) -> int:
    """`[training] gpus`: a number, or "all" (every CUDA device; one process on a CPU)."""
    if settings.gpus != "all":
        return settings.gpus
    import torch

    return max(1, torch.cuda.device_count())


def batch_metadata(sections: Iterable[DatasetSection], gpus: int) -> dict[str, str]:
    """The batch a step trains on, for a LoRA's header: each section's batch size times the GPUs
    (kohya's ss_total_batch_size: the largest of them)."""
    effective = {section.name: section.batch_size * gpus for section in sections}
    return {
        "ss_total_batch_size": str(max(effective.values(), default=gpus)),
        "ss_num_processes": str(gpus),
        "wan_lora.gpus": str(gpus),
        "wan_lora.effective_batch_size": json.dumps(effective, sort_keys=True),
    }


def require_gpus(gpus: int, available: int) -> None:
    if gpus > available:
        raise ConfigError(
            f"wan_lora.toml: [training] gpus = {gpus}, but this machine has {available} CUDA "
            "device(s): lower it, or use 'all'."
        )
