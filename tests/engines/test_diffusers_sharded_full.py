"""A full fine-tune over two gloo worker processes with the tiny model, standing for two GPUs: the
trained weights and optimizer state sharded with FSDP2 (the same code runs NCCL on CUDA)."""

import json
import logging
import os
from dataclasses import replace

import psutil
import pytest
import torch
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.full_checkpoint import TRAINED_FIELD
from wan_lora_dagster.engines.diffusers.lora_training import STATE_FOLDER
from wan_lora_dagster.engines.diffusers.sharded_training import SHARDS_FOLDER, ShardedStateStore
from wan_lora_dagster.engines.diffusers.training_state import VALUES_FILE
from wan_lora_dagster.errors import EngineCancelled, EngineError
from wan_lora_dagster.formats.cache_files import ema_file, read_lora_header
from wan_lora_dagster.formats.full_model import model_tensors
from wan_lora_dagster.testing.full_fine_tune import (
    base_transformer,
    forward,
    full_settings,
    request_for,
)

GPUS = 2
STEPS = 6  # six training clips, batch size 1, two per step: three steps an epoch, two epochs
# with an EMA: its averages are sharded like the weights, saved and resumed with them
SHARDED = full_settings(gpus=GPUS, max_train_epochs=2, save_every_n_epochs=1, ema_decay=0.9)


@pytest.fixture(scope="module")
def sharded_engine(tiny_model_dir):
    return DiffusersEngine(SHARDED, models_dir=tiny_model_dir.parent, device="cpu")


@pytest.fixture(scope="module")
def sharded_run(sharded_engine, training_set, tmp_path_factory):
    request = request_for(training_set, tmp_path_factory.mktemp("sharded"), SHARDED)
    progress, messages = [], _Messages()
    logger = logging.getLogger(DiffusersEngine.__module__)
    level = logger.level
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    try:
        saved = sharded_engine.train(request, progress.append, lambda c: None)
    finally:
        logger.removeHandler(messages)
        logger.setLevel(level)
    return request, progress, saved, messages.lines


def test_the_sharded_fine_tune_trains_every_linear_and_saves_model_folders(
    sharded_run, tiny_model_dir
):
    _, progress, saved, _ = sharded_run
    assert [report.done for report in progress] == list(range(1, STEPS + 1))
    assert [c.path.name for c in saved] == ["stripes-000001", "stripes-000002"]
    folder = saved[-1].path
    header = read_lora_header(folder)
    assert header["wan_lora.gpus"] == "2" and header["ss_steps"] == str(STEPS)
    loaded = WanTransformer3DModel.from_pretrained(folder).eval()
    base = base_transformer(tiny_model_dir)
    assert not torch.allclose(forward(loaded), forward(base)), "training changed nothing"
    before = base.state_dict()
    changed = {key for key, value in model_tensors(folder) if not torch.equal(value, before[key])}
    linears = {
        f"{name}.{tensor}"
        for name, module in base.named_modules()
        if isinstance(module, torch.nn.Linear)
        for tensor in ("weight", "bias")
    }
    assert changed == linears, "every linear's shards trained, and nothing else"
    assert set(json.loads(header[TRAINED_FIELD])) == linears
    average = WanTransformer3DModel.from_pretrained(ema_file(folder)).eval()
    assert not torch.equal(forward(average), forward(loaded)), "the EMA is its own model"


def test_frozen_blocks_stay_whole_in_fp8_and_come_out_as_the_base_model(
    sharded_engine, training_set, tiny_model_dir, tmp_path
):
    settings = SHARDED.model_copy(
        update={"full_blocks": (1,), "fp8_base": True, "max_train_steps": 2}
    )
    engine = DiffusersEngine(settings, sharded_engine.models_dir, device="cpu")
    request = request_for(training_set, tmp_path, settings)
    [saved] = engine.train(request, lambda report: None, lambda checkpoint: None)
    base = base_transformer(tiny_model_dir).state_dict()
    tensors = dict(model_tensors(saved.path))
    changed = {key for key, value in tensors.items() if not torch.equal(value, base[key])}
    assert changed and all(key.startswith("blocks.1.") for key in changed)
    # block 0 was stored in fp8 and never sharded: saved as the base model's exact weights
    assert all(tensors[key].dtype == base[key].dtype for key in base if key.startswith("blocks.0."))


def test_the_log_says_the_training_is_sharded(sharded_run):
    _, _, _, messages = sharded_run
    assert any("full fine-tune over 2 processes" in m and "FSDP2" in m for m in messages)


def test_memory_options_sharding_replaces_are_refused_before_the_workers(
    sharded_engine, training_set, tmp_path
):
    settings = SHARDED.model_copy(update={"blocks_to_swap": 1, "full_blocks": (0,)})
    engine = DiffusersEngine(settings, sharded_engine.models_dir, device="cpu")
    with pytest.raises(EngineError, match=r"blocks_to_swap is not available .* \(gpus = 2\)"):
        engine.train(request_for(training_set, tmp_path, settings), print, print)
    assert engine._workers is None


def test_a_cancel_ends_every_worker_and_the_sharded_state_resumes_bit_equal(
    sharded_engine, sharded_run, tmp_path
):
    request = replace(sharded_run[0], output_dir=tmp_path)
    workers: list[psutil.Process] = []

    def cancel_at_step_two(report):
        workers[:] = [psutil.Process(p.pid) for p in sharded_engine._workers.processes]
        if report.done == 2:
            raise EngineCancelled("cancelled")  # what engines.background's deliver raises

    with pytest.raises(EngineCancelled):
        sharded_engine.train(request, cancel_at_step_two, lambda checkpoint: None)

    # train() returns once it has waited for every worker: none may be left, nor a child of one
    assert len(workers) == GPUS
    assert not [worker.pid for worker in workers if psutil.pid_exists(worker.pid)]
    group = workers[0].pid
    assert not [p.pid for p in psutil.process_iter() if _process_group(p) == group]

    # the ranks agree on the step to stop after: the one the cancel reaches them in, or the next
    (state,) = (tmp_path / STATE_FOLDER).iterdir()
    assert state.name in ("stripes-step00000002", "stripes-step00000003")
    values = json.loads((state / VALUES_FILE).read_text(encoding="utf-8"))
    assert values["format"] == ShardedStateStore.state_format
    assert (state / SHARDS_FOLDER / ".metadata").is_file()
    assert sorted(path.name for path in state.glob("rng-rank*")) == [
        f"rng-rank{rank}.safetensors" for rank in range(GPUS)
    ]

    resumed = sharded_engine.train(request, lambda report: None, lambda checkpoint: None)
    uninterrupted = sharded_run[2]
    assert [c.path.name for c in resumed] == [c.path.name for c in uninterrupted]
    assert [c.loss for c in resumed] == [c.loss for c in uninterrupted]
    for checkpoint in (resumed[-1].path, ema_file(resumed[-1].path)):
        ours = dict(model_tensors(checkpoint))
        theirs = dict(model_tensors(uninterrupted[-1].path.parent / checkpoint.name))
        assert ours.keys() == theirs.keys()
        # gloo reduces in a fixed order: the resumed run's steps are the same sums as the others'
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs), checkpoint.name


class _Messages(logging.Handler):
    """The engine's log lines, at every level."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _process_group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
