"""`blocks_to_swap = N`: N transformer blocks' base weights live in CPU memory and are copied to
the GPU just ahead of use, on a side stream, overlapped with the compute of the blocks before.

Why not diffusers' `enable_group_offload(offload_type="block_level", use_stream=True)`: it moves
every parameter of a block, the LoRA's too, so the trained weights and their optimizer state would
leave the GPU between steps (AdamW steps them where they are), and it prefetches in forward order
only, while gradient checkpointing recomputes the blocks in reverse order during backward.

Here only the frozen base weights of the swapped blocks move; the LoRA stays on the GPU. A forward
pre-hook on every block makes the block's weights resident (waiting for their copy), drops the
swapped blocks that are done, and starts copying the next swapped block in the direction of travel:
upwards in forward, downwards in backward (the recomputation runs inside backward), wrapping round
to the block the next pass starts with. The swapped blocks are spread evenly through the model, so
each copy overlaps the compute of the blocks in between. Needs gradient checkpointing: without it
autograd would keep every block's weights for backward, and a dropped weight cannot be kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

logger = logging.getLogger(__name__)


def swapped_indices(num_blocks: int, count: int) -> list[int]:
    """`count` block indices spread evenly over `num_blocks`, the last block always among them
    (10 of 40: 3, 7, ..., 39)."""
    return sorted({round((k + 1) * num_blocks / count) - 1 for k in range(count)})


@dataclass
class _SwappedBlock:
    """A block's frozen parameters and their home copies (pinned CPU memory on a GPU)."""

    parameters: list[nn.Parameter]
    home: list[torch.Tensor]
    loaded: list[torch.Tensor] | None = None
    ready: torch.cuda.Event | None = None
    resident: bool = field(default=False)


class BlockSwapper:
    def __init__(self, blocks: nn.ModuleList, count: int, device: torch.device):
        self.blocks = blocks
        self.device = device
        self.order = swapped_indices(len(blocks), count)
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.swapped = {index: self._move_home(blocks[index]) for index in self.order}
        if self.cuda:
            torch.cuda.empty_cache()  # the swapped blocks' GPU memory back to the card
        self.handles = [
            block.register_forward_pre_hook(self._make_hook(index))
            for index, block in enumerate(blocks)
        ]

    def _move_home(self, block: nn.Module) -> _SwappedBlock:
        frozen = [p for p in block.parameters() if not p.requires_grad]
        home = [self._home_copy(p.data) for p in frozen]
        for parameter, copy in zip(frozen, home, strict=True):
            parameter.data = copy
        return _SwappedBlock(frozen, home)

    def _home_copy(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.cuda:
            return tensor.to("cpu").pin_memory()
        return tensor.clone()  # a CPU run swaps between CPU tensors: the same steps, same math

    def _make_hook(self, index: int):
        def before_block(module: nn.Module, args) -> None:
            self.enter(index)

        return before_block

    def enter(self, index: int) -> None:
        upcoming = self._upcoming(index, backward=torch._C._current_graph_task_id() != -1)
        if index in self.swapped:
            self._make_resident(index)
        for other, state in self.swapped.items():
            if other not in (index, upcoming) and (state.resident or state.loaded is not None):
                self._send_home(state)
        if upcoming is not None and self.swapped[upcoming].loaded is None:
            self._start_copy(self.swapped[upcoming])

    def _upcoming(self, index: int, backward: bool) -> int | None:
        """The next swapped block this pass will need; past the end, the next pass's first."""
        if backward:
            below = [i for i in self.order if i < index]
            return below[-1] if below else self.order[0]
        above = [i for i in self.order if i > index]
        return above[0] if above else self.order[-1]

    def _start_copy(self, state: _SwappedBlock) -> None:
        if not self.cuda:
            state.loaded = [home.clone() for home in state.home]
            return
        with torch.cuda.stream(self.copy_stream):
            state.loaded = [home.to(self.device, non_blocking=True) for home in state.home]
            state.ready = torch.cuda.Event()
            state.ready.record(self.copy_stream)

    def _make_resident(self, index: int) -> None:
        state = self.swapped[index]
        if state.resident:
            return
        if state.loaded is None:
            self._start_copy(state)  # not prefetched (the first step): wait for it here
        if self.cuda:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(state.ready)
            for tensor in state.loaded:
                tensor.record_stream(compute)  # freed only once compute is done with it
        for parameter, tensor in zip(state.parameters, state.loaded, strict=True):
            parameter.data = tensor
        state.resident = True

    def _send_home(self, state: _SwappedBlock) -> None:
        for parameter, home in zip(state.parameters, state.home, strict=True):
            parameter.data = home
        state.loaded, state.ready, state.resident = None, None, False

    def restore(self) -> None:
        """Every weight back on the device for good, the hooks removed."""
        for handle in self.handles:
            handle.remove()
        for state in self.swapped.values():
            for parameter, home in zip(state.parameters, state.home, strict=True):
                parameter.data = home.to(self.device)
            state.loaded, state.ready, state.resident = None, None, False


@contextmanager
def swapped_blocks(blocks: nn.ModuleList, count: int, device: torch.device) -> Iterator[None]:
    swapper = BlockSwapper(blocks, count, device)
    if device.type == "cuda":
        logger.info(
            "blocks_to_swap = %d: blocks %s live in pinned CPU memory", count, swapper.order
        )
    else:
        logger.info(
            "blocks_to_swap = %d on a CPU: blocks %s are copied between CPU tensors before use "
            "(no GPU memory to save here; the same steps and the same math as on a GPU)",
            count,
            swapper.order,
        )
    try:
        yield
    finally:
        swapper.restore()
