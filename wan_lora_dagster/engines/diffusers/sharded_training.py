"""A full fine-tune (`network = "full"`) sharded over the training processes with PyTorch's FSDP2.

Data parallelism (engines.diffusers.distributed) keeps a whole copy of what trains on every rank:
right for a LoRA (megabytes), not for a full fine-tune, whose fp32 master weights, gradients and
AdamW moments take 16 bytes a parameter (224 GB at 14B). Here `fully_shard` splits them over the
ranks: each transformer block that trains is one unit (gathered whole just before its forward and
its backward, its gradients reduce-scattered after), then the root takes the rest (embedders,
output projection). What is frozen stays whole on every rank, out of FSDP's hands
(`ignored_params`): the blocks not in `full_blocks`, stored in fp8 with `fp8_base`. Parameters
are gathered in the dtype they are kept in: a cast to bf16 on the way would also round what
diffusers keeps in fp32 (norms, modulation tables), so a sharded step computes what one GPU does.
Activation checkpointing is the transformer's own (gradient_checkpointing): the recomputation runs
inside FSDP's backward of the block, which is gathered by then.

The loop is the one-process loop (lora_training.train_lora), whose ranks say they are sharded:
every rank then takes part in each save. A state is written with torch.distributed.checkpoint
(each rank its shards of the trained weights and of the optimizer state) beside the usual
state.json, and a checkpoint is the whole model, gathered into rank 0's CPU memory and written
there as a diffusers folder (engines.diffusers.full_checkpoint).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from wan_lora_dagster.disk_full import writing_into
from wan_lora_dagster.engines.diffusers.acceleration.optimizers import EIGHT_BIT_ADAMW
from wan_lora_dagster.engines.diffusers.full_checkpoint import save_state_folder
from wan_lora_dagster.engines.diffusers.full_training import FullFineTune
from wan_lora_dagster.engines.diffusers.training_state import (
    VALUES_FILE,
    LoopPosition,
    StateStore,
    TrainingComponents,
    restore_rng,
    rng_tensors,
)
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.file_modes import with_umask_mode
from wan_lora_dagster.recipe.training import TrainingSettings

SHARDS_FOLDER = "shards"  # a state's torch.distributed.checkpoint, beside state.json
# the trained tensors and their optimizer state: the frozen ones are the base model's
TRAINED_ONLY = StateDictOptions(ignore_frozen_params=True)
WHOLE_ON_RANK_0 = StateDictOptions(full_state_dict=True, cpu_offload=True)


def sharded_description(world_size: int) -> str:
    """The log's line for a full fine-tune over several processes."""
    return (
        f"full fine-tune over {world_size} processes: weights, gradients and optimizer state "
        "sharded with FSDP2 (fully_shard per transformer block, then the root)"
    )


def require_shardable(settings: TrainingSettings) -> None:
    """Refuse, before the workers start, the memory options a sharded full fine-tune has no use
    for (sharding is its memory saving) or that cannot work on sharded tensors."""
    refused = {
        "blocks_to_swap": settings.blocks_to_swap > 0,
        "gradient_checkpointing_cpu_offload": settings.gradient_checkpointing_cpu_offload,
        f"optimizer = {settings.optimizer!r}": settings.optimizer.lower() in EIGHT_BIT_ADAMW,
    }
    for option, present in refused.items():
        if present:
            raise EngineError(
                f"wan_lora.toml: [training] {option} is not available in a full fine-tune over "
                f"several GPUs (gpus = {settings.gpus}), which shards the trained weights and "
                "their optimizer state instead: remove it, or set gpus = 1."
            )


class ShardedRanks:
    """engines.diffusers.ranks.Ranks of a sharded full fine-tune (the worker's process group)."""

    sharded = True

    def __init__(self, ranks):
        """ranks: the process group's Ranks (distributed_worker.ProcessGroupRanks), whose rank,
        loss reduction and stop requests these are."""
        self._ranks = ranks
        self.rank = ranks.rank
        self.world_size = ranks.world_size
        self.device = ranks.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce(self, loss: float) -> tuple[list[float], bool]:
        return self._ranks.reduce(loss)

    def wrap(self, transformer: torch.nn.Module) -> torch.nn.Module:
        """Shard `transformer` in place: each block that trains, then the root; the blocks
        nothing of which trains stay whole on every rank."""
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        frozen: set[torch.nn.Parameter] = set()
        for block in transformer.blocks:
            if any(parameter.requires_grad for parameter in block.parameters()):
                fully_shard(block, mesh=mesh)
            else:
                frozen.update(block.parameters())
        fully_shard(transformer, mesh=mesh, ignored_params=frozen)
        return transformer

    @contextmanager
    def no_sync(self, model: torch.nn.Module) -> Iterator[None]:
        """Gradients accumulate in each rank's unsharded copy until the step's last backward."""
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)


class ShardedStateStore(StateStore):
    """StateStore's folders, written by every rank together (each save is collective and ends
    when the folder has its final name, so every rank sees the same states)."""

    state_format = "fsdp2-1"

    def save(self, position: LoopPosition, components: TrainingComponents) -> Path:
        final = self.folder(position.step)
        if final.is_dir():
            return final
        temporary = self.root / f".{final.name}.tmp"
        main = dist.get_rank() == 0
        try:
            with writing_into(self.root):
                if main:
                    shutil.rmtree(temporary, ignore_errors=True)
                    temporary.mkdir(parents=True)
                dist.barrier()  # the folder exists before any rank writes into it
                dcp.save(_trained_state(components), checkpoint_id=temporary / SHARDS_FOLDER)
                rng = rng_tensors(components.generator)
                save_file(rng, temporary / _rng_file(dist.get_rank()))
                dist.barrier()  # every rank's files are written
                if main:
                    values = {"scheduler": components.scheduler.state_dict()}
                    values.update(self.identification(position))
                    (temporary / VALUES_FILE).write_text(json.dumps(values), encoding="utf-8")
                    with_umask_mode(temporary)
                    temporary.rename(final)
                    self._saved(final, position.step)
        except BaseException:  # a full disk or a cancel: no half state waits for the next run
            if main:
                shutil.rmtree(temporary, ignore_errors=True)
            raise
        dist.barrier()
        return final

    def restore(self, folder: Path, components: TrainingComponents) -> None:
        values = json.loads((folder / VALUES_FILE).read_text(encoding="utf-8"))
        state = _trained_state(components)
        dcp.load(state, checkpoint_id=folder / SHARDS_FOLDER)
        set_state_dict(
            components.model,
            components.optimizer,
            model_state_dict=state["model"],
            optim_state_dict=state["optimizer"],
            options=StateDictOptions(ignore_frozen_params=True, strict=False),
        )
        components.scheduler.load_state_dict(values["scheduler"])
        restore_rng(load_file(folder / _rng_file(dist.get_rank())), components.generator)


class ShardedFullFineTune(FullFineTune):
    """A full fine-tune whose checkpoint is gathered from the shards: every rank calls `write`,
    rank 0 writes the folder."""

    def save(self, trained: list[str], path: Path, header: dict[str, str]) -> None:
        transformer = self.models.transformer
        state = get_model_state_dict(transformer, options=WHOLE_ON_RANK_0)
        if dist.get_rank() == 0:
            base = self.models.folder / "transformer"
            save_state_folder(state, transformer.config, trained, base, path, header)
        dist.barrier()  # no rank goes on before the checkpoint is whole


def _trained_state(components: TrainingComponents) -> dict:
    """The shards of the trained tensors and of their optimizer state, by parameter name, and
    of their moving average (sharded as the parameters are) when one is kept."""
    model, optimizer = get_state_dict(components.model, components.optimizer, options=TRAINED_ONLY)
    state = {"model": model, "optimizer": optimizer}
    if components.average:
        averages = components.average.averages
        state["ema"] = {f"{index:05d}": average for index, average in enumerate(averages)}
    return state


def _rng_file(rank: int) -> str:
    return f"rng-rank{rank}.safetensors"
