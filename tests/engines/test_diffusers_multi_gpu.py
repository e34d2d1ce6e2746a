"""Data-parallel training of the diffusers engine, on a CPU: two gloo worker processes with the
tiny model stand for two GPUs (the same code runs NCCL on CUDA)."""

import os
from dataclasses import replace

import psutil
import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.lora_training import STATE_FOLDER
from wan_lora_dagster.engines.diffusers.training_log import LOSS_TAG, RANK_LOSS_TAG
from wan_lora_dagster.errors import EngineCancelled
from wan_lora_dagster.formats.cache_files import read_lora_header

GPUS = 2
STEPS_PER_EPOCH = 3  # six training clips, batch size 1, two per step


@pytest.fixture(scope="module")
def two_rank_engine(tiny_model_dir, training_run):
    settings = training_run.request.settings.model_copy(
        update={"gpus": GPUS, "max_train_epochs": 2, "save_every_n_epochs": 1}
    )
    return DiffusersEngine(settings, models_dir=tiny_model_dir.parent, device="cpu")


def two_rank_request(engine, training_run, folder):
    return replace(
        training_run.request, settings=engine.settings, output_dir=folder, log_dir=folder / "logs"
    )


@pytest.fixture(scope="module")
def two_rank_run(two_rank_engine, training_run, tmp_path_factory):
    request = two_rank_request(two_rank_engine, training_run, tmp_path_factory.mktemp("ranks"))
    progress, announced = [], []
    returned = two_rank_engine.train(request, progress.append, announced.append)
    return request, progress, announced, returned


def test_two_ranks_train_every_batch_once_per_epoch_and_save_the_lora(two_rank_run):
    _, progress, announced, returned = two_rank_run

    assert [report.done for report in progress] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert [c.path.name for c in returned] == [
        "stripes-000001.safetensors",
        "stripes-000002.safetensors",
    ]
    assert announced == returned
    header = read_lora_header(returned[-1].path)
    assert header["ss_total_batch_size"] == "2"  # batch size 1 on each of two GPUs
    assert header["wan_lora.gpus"] == "2"
    assert header["ss_steps"] == str(2 * STEPS_PER_EPOCH)


def test_the_reported_loss_is_the_mean_over_the_ranks(two_rank_run):
    request, *_ = two_rank_run
    events = EventAccumulator(str(request.log_dir))
    events.Reload()
    mean = [event.value for event in events.Scalars(LOSS_TAG)]
    ranks = [[event.value for event in events.Scalars(f"{RANK_LOSS_TAG}{rank}")] for rank in (0, 1)]

    assert len(mean) == 2 * STEPS_PER_EPOCH
    assert mean == pytest.approx([(a + b) / 2 for a, b in zip(*ranks, strict=True)], abs=1e-6)
    assert ranks[0] != ranks[1], "the ranks trained on the same batches"


def test_a_cancel_ends_every_worker_and_the_run_resumes(
    two_rank_engine, two_rank_run, training_run, tmp_path
):
    request = two_rank_request(two_rank_engine, training_run, tmp_path)
    workers = []

    def cancel_at_step_two(report):
        workers[:] = [psutil.Process(p.pid) for p in two_rank_engine._workers.processes]
        if report.done == 2:
            raise EngineCancelled("cancelled")  # what engines.background's deliver raises

    with pytest.raises(EngineCancelled):
        two_rank_engine.train(request, cancel_at_step_two, lambda checkpoint: None)

    group = workers[0].pid
    survivors = [p.pid for p in psutil.process_iter() if _process_group(p) == group]
    assert survivors == [], "a training worker outlived the cancel"
    # the workers stop together after the step they are in when the cancel reaches them
    (state,) = (tmp_path / STATE_FOLDER).iterdir()
    assert state.name in ("stripes-step00000002", "stripes-step00000003")

    returned = two_rank_engine.train(request, lambda report: None, lambda checkpoint: None)

    uninterrupted = two_rank_run[3]
    assert [c.path.name for c in returned] == [c.path.name for c in uninterrupted]
    resumed_lora, lora = load_file(returned[-1].path), load_file(uninterrupted[-1].path)
    assert all(torch.allclose(resumed_lora[key], lora[key], atol=1e-6) for key in lora)


def _process_group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
