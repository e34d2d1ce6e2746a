"""What the training loop needs to know about the processes that train together.

One process: the loop as it always was. Data-parallel (engines.diffusers.distributed): every rank
steps through the same global batch order, taking every world_size-th batch, its gradients averaged
by DistributedDataParallel; rank 0 alone reports, saves checkpoints and states. Sharded
(engines.diffusers.sharded_training): each rank holds a part of the trained weights and their
optimizer state, so every rank takes part in each save.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Protocol

import torch


class Ranks(Protocol):
    rank: int
    world_size: int
    sharded: bool  # the trained state is split over the ranks: every rank takes part in saves

    @property
    def is_main(self) -> bool: ...

    def wrap(self, transformer: torch.nn.Module) -> torch.nn.Module:
        """The module the forward passes go through."""

    def no_sync(self, model: torch.nn.Module):
        """A context in which a backward pass leaves the gradients unsynchronized."""

    def reduce(self, loss: float) -> tuple[list[float], bool]:
        """(each rank's loss of the step, whether any rank was asked to stop)."""


class SingleProcess:
    rank = 0
    world_size = 1
    sharded = False
    is_main = True

    def wrap(self, transformer: torch.nn.Module) -> torch.nn.Module:
        return transformer

    def no_sync(self, model: torch.nn.Module):
        return nullcontext()

    def reduce(self, loss: float) -> tuple[list[float], bool]:
        return [loss], False


SINGLE_PROCESS = SingleProcess()
