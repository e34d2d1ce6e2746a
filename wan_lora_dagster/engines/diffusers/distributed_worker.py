"""One rank of a data-parallel training (see engines.diffusers.distributed): `python -m` this module
with the spec file; RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the environment, as torchrun
sets them. Exits 0 when trained, 130 when stopped by SIGTERM (after rank 0 saved the state)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from wan_lora_dagster.engines.base import TextJob, TrainRequest
from wan_lora_dagster.engines.diffusers.distributed import checkpoint_event
from wan_lora_dagster.engines.diffusers.lora_training import train_lora
from wan_lora_dagster.engines.diffusers.sharded_training import ShardedRanks
from wan_lora_dagster.engines.wan_models import WanModels, compute_dtype
from wan_lora_dagster.errors import EngineCancelled
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

CANCELLED_EXIT = 130
COLLECTIVE_TIMEOUT = timedelta(minutes=30)  # the longest a rank waits for another (a state save)


class ProcessGroupRanks:
    """engines.diffusers.ranks.Ranks over torch.distributed: DDP for the gradients, one all_gather a
    step for every rank's loss and stop request."""

    sharded = False

    def __init__(self, device: torch.device, stop: threading.Event):
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = device
        self.stop = stop

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, transformer: torch.nn.Module) -> torch.nn.Module:
        # every rank loads the same weights and seeds the same LoRA: no initial broadcast
        return DistributedDataParallel(
            transformer,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            broadcast_buffers=False,
            init_sync=False,
        )

    def no_sync(self, model: torch.nn.Module):
        return model.no_sync()

    def reduce(self, loss: float) -> tuple[list[float], bool]:
        mine = torch.tensor([loss, float(self.stop.is_set())], device=self.device)
        everyone = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(everyone, mine)
        return [float(row[0]) for row in everyone], any(float(row[1]) for row in everyone)


def read_request(values: dict) -> TrainRequest:
    root = Path(values["root"])
    return TrainRequest(
        manifest=TrainingSetManifest.load(Path(values["manifest"]), root),
        settings=TrainingSettings(**values["settings"]),
        sections=tuple(DatasetSection(**section) for section in values["sections"]),
        output_dir=Path(values["output_dir"]),
        output_name=values["output_name"],
        header=values["header"],
        log_dir=None if values["log_dir"] is None else Path(values["log_dir"]),
        empty_caption=_text_job(values["empty_caption"]),
    )


def _text_job(values: dict | None) -> TextJob | None:
    return values and TextJob(values["item_id"], values["text"], Path(values["cache_dir"]))


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    events = os.fdopen(os.dup(1), "w", buffering=1)  # rank 0's reports; the rest goes to stderr
    os.dup2(2, 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(CANCELLED_EXIT))
    model = spec["model"]
    rank = int(os.environ["RANK"])
    device = torch.device("cuda", rank) if model["device"] == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        timeout=COLLECTIVE_TIMEOUT,
        device_id=device if device.type == "cuda" else None,
    )
    try:
        request = read_request(spec["request"])
        dtype = compute_dtype(device, request.settings.mixed_precision)
        settings = request.settings
        models = WanModels(
            Path(model["folder"]),
            device,
            dtype,
            settings.fp8_base,
            None,
            full_blocks=settings.full_blocks or (),
            fp8_scaled=settings.fp8_scaled,
        )
        models.transformer  # noqa: B018 (load before training, while a stop still just exits)
        ranks = ProcessGroupRanks(device, stop)
        if settings.network == "full":  # a full fine-tune's state is sharded over the ranks
            ranks = ShardedRanks(ranks)
        signal.signal(signal.SIGTERM, lambda number, frame: stop.set())

        def report(kind: str, values: dict) -> None:
            events.write(json.dumps({kind: values}) + "\n")

        try:
            returned = train_lora(
                models,
                request,
                lambda progress: report("progress", progress.to_json()),
                lambda checkpoint: report("checkpoint", checkpoint_event(checkpoint)),
                ranks,
            )
        except EngineCancelled:
            return CANCELLED_EXIT
        if ranks.is_main:
            report("returned", [checkpoint_event(checkpoint) for checkpoint in returned])
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
