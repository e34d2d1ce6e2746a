"""Regional `torch.compile`: each repeated transformer block, with the LoRA inside it.

Compiling the blocks rather than the model costs the compile time of one block: every
WanTransformerBlock runs the same code, so the graph compiled for the first is reused by the
others (dynamo guards on the blocks' structure, not on which block it is). Only `forward` is
compiled, so module hooks (block swapping's) stay eager, outside the graph.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Inductor on a GPU. Tests on a CPU set "aot_eager" (same graphs, no C++ build of each kernel).
BACKEND_VARIABLE = "WAN_LORA_COMPILE_BACKEND"
DEFAULT_BACKEND = "inductor"


def compile_backend() -> str:
    return os.environ.get(BACKEND_VARIABLE, DEFAULT_BACKEND)


@contextmanager
def compiled_blocks(blocks: nn.ModuleList) -> Iterator[None]:
    """Each block's forward compiled while inside; the eager forward again afterwards."""
    backend = compile_backend()
    logger.info("compiling the %d transformer blocks (backend %s)", len(blocks), backend)
    for block in blocks:
        block.forward = torch.compile(block.forward, backend=backend)
    try:
        yield
    finally:
        for block in blocks:
            del block.forward  # the instance attribute; the class's forward shows through again
        logger.info("compiled graphs so far: %s", compile_counts())


def compile_counts() -> dict[str, int]:
    """dynamo's own counters, process-wide: distinct graphs compiled and frames compiled.

    A block compiles two graphs per latent shape: the first block's input needs no gradient
    (nothing before it trains), every later block's does. Steps of one shape add none.
    """
    from torch._dynamo.utils import counters

    return {
        "unique_graphs": counters["stats"]["unique_graphs"],
        "frames_ok": counters["frames"]["ok"],
    }
