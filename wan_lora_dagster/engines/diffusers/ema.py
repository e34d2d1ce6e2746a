"""An exponential moving average of the trained weights, saved beside each checkpoint.

After each optimizer step every averaged tensor becomes decay * average + (1 - decay) * weight,
starting from the weights before the first step. It works on "the trainable parameters", whatever
they are (a LoRA's now), kept in float32 on the GPU or, to spare GPU memory, the CPU
(`ema_device`). A checkpoint's average is written by the same code that writes its weights, with
the averages swapped into the parameters for the duration (and the weights put back exactly), to
`<checkpoint>.ema.safetensors`: the same keys and lineage header, so it loads and traces as the
checkpoint does. The averages are part of the training state, so a resumed run goes on exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from wan_lora_dagster.formats.cache_files import ema_file
from wan_lora_dagster.recipe.training import TrainingSettings

EMA_DECAY_FIELD = "wan_lora.ema_decay"  # in the EMA file's header: what it averages with


class WeightAverage:
    def __init__(self, parameters: list[torch.nn.Parameter], decay: float, device: torch.device):
        self.parameters = parameters
        self.decay = decay
        self.averages = [p.detach().to(device, torch.float32, copy=True) for p in parameters]

    @classmethod
    def of(
        cls, settings: TrainingSettings, parameters: list[torch.nn.Parameter], device: torch.device
    ) -> WeightAverage | None:
        """The recipe's average (None when ema_decay is unset), on the compute device or CPU."""
        if settings.ema_decay is None:
            return None
        on = torch.device("cpu") if settings.ema_device == "cpu" else device
        return cls(parameters, settings.ema_decay, on)

    @torch.no_grad()
    def update(self) -> None:
        """After an optimizer step: average += (1 - decay) * (weight - average)."""
        for average, parameter in zip(self.averages, self.parameters, strict=True):
            average.lerp_(parameter.detach().to(average.device, torch.float32), 1 - self.decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The averages in the parameters for the duration; the weights exactly back after."""
        kept = [parameter.detach().clone() for parameter in self.parameters]
        try:
            _copy_into(self.parameters, self.averages)
            yield
        finally:
            _copy_into(self.parameters, kept)

    def state(self) -> dict[str, torch.Tensor]:
        """The averages as tensors of a training state."""
        return {f"ema.{index:05d}": average.cpu() for index, average in enumerate(self.averages)}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        _copy_into(
            self.averages, [tensors[f"ema.{index:05d}"] for index in range(len(self.averages))]
        )

    def save_beside(self, checkpoint: Path, write: Callable[[Path, dict[str, str]], None]) -> Path:
        """Write the averages with `write(path, extra header)`, the checkpoint's own writer."""
        path = ema_file(checkpoint)
        with self.applied():
            write(path, {EMA_DECAY_FIELD: repr(self.decay)})
        return path


@torch.no_grad()
def _copy_into(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    for target, source in zip(targets, sources, strict=True):
        target.copy_(source)
