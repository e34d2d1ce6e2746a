"""The saved state of a diffusers-engine training run, from which a later launch goes on exactly.

A state is a folder `<output_dir>/state/<output_name>-step<NNNNNNNN>/` holding `state.safetensors`
(the LoRA's trainable tensors, the optimizer's tensors, the random generators' states, the
EMA of the trained weights when kept) and
`state.json` (the loop's position, the optimizer's other values, the LR scheduler, the python
shuffler). It is written under a temporary name and renamed, so a folder with the final name is
always whole; the older states of the run are then deleted (a resume needs the newest only).
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from wan_lora_dagster.disk_full import writing_into
from wan_lora_dagster.engines.base import CheckpointInfo, TrainRequest
from wan_lora_dagster.engines.diffusers.ema import WeightAverage
from wan_lora_dagster.engines.training_plan import TrainingPlan
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.file_modes import with_umask_mode
from wan_lora_dagster.formats.cache_files import read_lora_header

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
TENSORS_FILE = "state.safetensors"
VALUES_FILE = "state.json"
LOSS_FIELD = "wan_lora.loss"  # the running loss at a checkpoint, in its header


@dataclass
class LoopPosition:
    """Where the training loop stands after `step` optimizer steps.

    epoch: the epoch in progress (1-based); epoch_shuffler: the python shuffler's state at that
    epoch's start, from which its batch order is drawn again; epoch_steps: the steps of that epoch
    already done; recent_losses: the window of the running loss; loss_curve: [step, running
    loss] of every step so far (a resumed run's loss curves go on from it).
    """

    step: int
    epoch: int
    epoch_shuffler: list
    epoch_steps: int
    recent_losses: list[float] = field(default_factory=list)
    loss_curve: list[list] = field(default_factory=list)

    @classmethod
    def start(cls, seed: int) -> LoopPosition:
        return cls(0, 0, shuffler_state(random.Random(seed)), 0)

    def shuffler(self) -> random.Random:
        """A shuffler at this epoch's start."""
        shuffler = random.Random()
        version, internal, gauss = self.epoch_shuffler
        shuffler.setstate((version, tuple(internal), gauss))
        return shuffler


@dataclass
class TrainingComponents:
    """What a state restores: the trainable tensors, in a fixed order, and what steps them
    (model: the module they are in, which a sharded state is saved by)."""

    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    average: WeightAverage | None = None
    model: torch.nn.Module | None = None


class StateStore:
    """The states of one run (one output name and identity) under `root`."""

    state_format: int | str = STATE_FORMAT  # a state of another format is not this store's

    def __init__(self, root: Path, output_name: str, identity: str):
        self.root = Path(root)
        self.output_name = output_name
        self.identity = identity

    def folder(self, step: int) -> Path:
        return self.root / f"{self.output_name}-step{step:08d}"

    def save(self, position: LoopPosition, components: TrainingComponents) -> Path:
        """Write the state after `position.step` steps (once per step), then drop older ones."""
        final = self.folder(position.step)
        if final.is_dir():
            return final
        temporary = self.root / f".{final.name}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        tensors, values = _state_of(components)
        values.update(self.identification(position))
        try:
            with writing_into(self.root):
                temporary.mkdir(parents=True)
                save_file(tensors, temporary / TENSORS_FILE)
                (temporary / VALUES_FILE).write_text(json.dumps(values), encoding="utf-8")
                with_umask_mode(temporary)
                temporary.rename(final)
        except BaseException:  # a full disk or a cancel: no half state waits for the next run
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        self._saved(final, position.step)
        return final

    def identification(self, position: LoopPosition) -> dict:
        """What state.json says of the state besides its components' values."""
        return {
            "format": self.state_format,
            "identity": self.identity,
            "position": asdict(position),
        }

    def _saved(self, final: Path, step: int) -> None:
        """A state is whole at `final`: the older ones go."""
        logger.info("saved the training state at step %d in %s", step, final)
        for older in self._folders():
            if older != final:
                shutil.rmtree(older, ignore_errors=True)

    def latest(self) -> tuple[LoopPosition, Path] | None:
        """The newest whole state of this run, or None (another run's states are ignored)."""
        for folder in sorted(self._folders(), reverse=True):
            try:
                values = json.loads((folder / VALUES_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (
                values.get("format") == self.state_format
                and values.get("identity") == self.identity
            ):
                return LoopPosition(**values["position"]), folder
        return None

    def restore(self, folder: Path, components: TrainingComponents) -> None:
        values = json.loads((folder / VALUES_FILE).read_text(encoding="utf-8"))
        _restore(load_file(folder / TENSORS_FILE), values, components)

    def finish(self, position: LoopPosition) -> None:
        """A finished run needs no state, only its loss curve: a launch stopped before it
        recorded the last checkpoints draws their curves from it (`finished_curve`)."""
        record = {"format": self.state_format, "identity": self.identity}
        with writing_into(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            temporary = self._finished_file().with_suffix(".tmp")
            temporary.write_text(json.dumps({**record, "loss_curve": position.loss_curve}))
            temporary.replace(self._finished_file())
        self.clear()

    def finished_curve(self) -> tuple[tuple[int, float], ...]:
        """The loss curve `finish` kept of this run (another run's, or none: empty)."""
        try:
            values = json.loads(self._finished_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ()
        if values.get("format") != self.state_format or values.get("identity") != self.identity:
            return ()
        return tuple((step, loss) for step, loss in values["loss_curve"])

    def _finished_file(self) -> Path:
        return self.root / f"{self.output_name}.finished.json"

    def clear(self) -> None:
        """Drop every state of this run."""
        for folder in self._folders():
            shutil.rmtree(folder, ignore_errors=True)
        for temporary in self.root.glob(f".{self.output_name}-step*.tmp"):
            shutil.rmtree(temporary, ignore_errors=True)

    def _folders(self) -> list[Path]:
        pattern = re.compile(re.escape(self.output_name) + r"-step\d{8}")
        if not self.root.is_dir():
            return []
        return [path for path in self.root.iterdir() if pattern.fullmatch(path.name)]


def _state_of(components: TrainingComponents) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {
        f"lora.{index:05d}": parameter.detach().cpu().clone()
        for index, parameter in enumerate(components.parameters)
    }
    optimizer = components.optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, entries in optimizer["state"].items():
        for name, value in _leaves(entries):
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    tensors.update(rng_tensors(components.generator))
    if components.average:
        tensors.update(components.average.state())
    values = {
        "optimizer_groups": optimizer["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": components.scheduler.state_dict(),
    }
    return tensors, values


def _restore(tensors: dict[str, torch.Tensor], values: dict, components: TrainingComponents):
    with torch.no_grad():
        for index, parameter in enumerate(components.parameters):
            parameter.copy_(tensors[f"lora.{index:05d}"])
    state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            _set_leaf(state.setdefault(int(index), {}), name, tensor)
    for index, scalars in values["optimizer_scalars"].items():
        for name, value in scalars.items():
            _set_leaf(state.setdefault(int(index), {}), name, value)
    components.optimizer.load_state_dict(
        {"state": state, "param_groups": values["optimizer_groups"]}
    )
    components.scheduler.load_state_dict(values["scheduler"])
    if components.average:
        components.average.restore(tensors)
    restore_rng(tensors, components.generator)


def rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """This process's random generators' states."""
    tensors = {"rng.generator": generator.get_state(), "rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for device, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{device}"] = state
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(key for key in tensors if key.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[key] for key in cuda][: torch.cuda.device_count()])


def _leaves(entries: dict, prefix: str = ""):
    """(path, value) of every leaf of an optimizer's per-parameter state: 8-bit optimizers nest
    their quantized tensors in a dict (bitsandbytes' `__bnb_optimizer_quant_state__`)."""
    for name, value in entries.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", value


def _set_leaf(entries: dict, path: str, value) -> None:
    *parents, name = path.split("/")
    for parent in parents:
        entries = entries.setdefault(parent, {})
    entries[name] = value


def kept_checkpoints(
    plan: TrainingPlan, request: TrainRequest, resume_step: int
) -> list[CheckpointInfo]:
    """The checkpoints a resumed run keeps: those up to its state, recognized as this run's by
    their header; a file past the state, or another run's, is never overwritten."""
    kept = []
    for checkpoint in plan.save_points:
        path = request.output_dir / checkpoint.file_name
        if not path.exists():
            continue
        header = read_lora_header(path)
        foreign = {key for key, value in request.header.items() if header.get(key) != value}
        if checkpoint.step > resume_step or foreign:
            why = (
                f"its header differs in {sorted(foreign)}" if foreign else "it lies past the state"
            )
            raise EngineError(
                f"{path}: cannot resume {request.output_name} at step {resume_step}, "
                f"this checkpoint is in the way ({why}). Checkpoints are never overwritten: "
                "move the file away to go on."
            )
        loss = json.loads(header.get(LOSS_FIELD, "null"))
        kept.append(CheckpointInfo(path, checkpoint.epoch, checkpoint.step, loss))
    return kept


def shuffler_state(shuffler: random.Random) -> list:
    """A python shuffler's state as JSON values."""
    version, internal, gauss = shuffler.getstate()
    return [version, list(internal), gauss]
