"""TensorBoard event files of a training run: what musubi-tuner users read with
`--log_with tensorboard`, written by the diffusers engine under the request's log folder."""

from __future__ import annotations

import resource
from pathlib import Path

import torch

LOSS_TAG = "loss/current"
RANK_LOSS_TAG = "loss/rank"
RUNNING_LOSS_TAG = "loss/average"
LEARNING_RATE_TAG = "lr/unet"  # musubi-tuner's tag for the network's learning rate
SECONDS_TAG = "speed/seconds_per_step"
PEAK_MEMORY_TAG = "memory/peak_gib"


class TensorBoardLog:
    """One writer per launch; a resumed launch drops what an earlier one logged past its start."""

    def __init__(self, folder: Path, start_step: int, device: torch.device):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard is needed only here

        folder.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(folder), purge_step=start_step + 1 if start_step else None)
        self.device = device

    def step(self, step: int, losses: list[float], running_loss: float, lr: float, seconds: float):
        """losses: each rank's loss of the step; the loss is their mean."""
        self.writer.add_scalar(LOSS_TAG, sum(losses) / len(losses), step)
        if len(losses) > 1:
            for rank, loss in enumerate(losses):
                self.writer.add_scalar(f"{RANK_LOSS_TAG}{rank}", loss, step)
        self.writer.add_scalar(RUNNING_LOSS_TAG, running_loss, step)
        self.writer.add_scalar(LEARNING_RATE_TAG, lr, step)
        self.writer.add_scalar(SECONDS_TAG, seconds, step)
        self.writer.add_scalar(PEAK_MEMORY_TAG, _peak_memory_gib(self.device), step)

    def close(self) -> None:
        self.writer.close()


def _peak_memory_gib(device: torch.device) -> float:
    """The GPU's peak allocated memory; on a CPU, the process's peak resident size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


class NoLog:
    def step(self, step: int, losses: list[float], running_loss: float, lr: float, seconds: float):
        pass

    def close(self) -> None:
        pass


def open_log(folder: Path | None, start_step: int, device: torch.device, is_main: bool):
    """TensorBoard events under `folder` (rank 0 only); nothing without a folder."""
    if folder is None or not is_main:
        return NoLog()
    return TensorBoardLog(folder, start_step, device)
