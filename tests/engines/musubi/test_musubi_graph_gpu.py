"""The REAL kohya-ss/musubi-tuner driven through the whole graph by `wan-lora run`, on a GPU.

The demo project (its synthetic film cut by ffmpeg, its tiny captioner) with `engine = "musubi"`
and random weights of the real t2v-1.3B shapes, the UMT5-XXL encoder included, and a tokenizer
built offline (`[training] tokenizer`, HF_HUB_OFFLINE=1): musubi's wan_cache_latents and
wan_cache_text_encoder_outputs make the caches, `accelerate launch wan_train_network.py` trains,
Ctrl-C cancels the run once its first checkpoint is recorded in Dagster, the next `wan-lora run`
resumes it to the second checkpoint, and wan_generate_video makes one eval video per checkpoint.

Opt-in: needs CUDA and MUSUBI_TUNER_DIR; about 14 GB of weights are built once under
WAN_LORA_TEST_WEIGHTS. Where $OUT is set (the device machine) the measurements and the runs'
output go there too.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import av
import pytest
import torch

from wan_lora_dagster.formats.musubi_cache import load_text_cache
from wan_lora_dagster.testing.gpu_fixtures import musubi_checkout, real_shape_training, skip_reason
from wan_lora_dagster.testing.gpu_watch import GpuMemoryPoller, gpu_compute_pids, live_processes
from wan_lora_dagster.testing.graph_scenario import (
    CANCEL_SECONDS,
    CliRun,
    check_resumed,
    checkpoint_digests,
    checkpoint_events,
    interrupt,
    musubi_demo_project,
    project_instance,
    wait_for_checkpoint_event,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.musubi,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

EPOCHS = 2
REPEATS = 8  # 4 training clips x 4 windows x 8 = 128 steps an epoch: time to cancel in epoch 2
RUN_SECONDS = 540
_RATE = re.compile(r"^train: \d+/\d+.*?([\d.]+) s/it")


@pytest.fixture(scope="module")
def metrics():
    found: dict = {}
    yield found
    print("\nmusubi graph GPU metrics:", json.dumps(found, indent=1))
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "musubi_graph_gpu_metrics.json").write_text(json.dumps(found))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    training = real_shape_training(max_train_epochs=EPOCHS, save_every_n_epochs=1)
    root = tmp_path_factory.mktemp("musubi-graph-gpu")
    return musubi_demo_project(root / "demo", training, num_repeats=REPEATS)


@pytest.fixture(scope="module")
def cancelled(project, metrics):
    """The first `wan-lora run`: caches, then training until Ctrl-C after its first checkpoint."""
    marker = str(musubi_checkout())
    run = CliRun.start(project, {"HF_HUB_OFFLINE": "1"})
    with GpuMemoryPoller() as memory:
        first = wait_for_checkpoint_event(project, run, timeout=RUN_SECONDS)
        trainers = live_processes(marker)
        gpu_pids = gpu_compute_pids()
        code, seconds = interrupt(run, signal.SIGINT)
    _keep_output("cancelled_run.log", run.text)
    metrics["cancel_seconds"] = round(seconds, 2)
    metrics["first_run_peak_gpu_memory_mib"] = memory.peak_above_baseline
    return {
        "code": code,
        "seconds": seconds,
        "output": run.text,
        "first": first,
        "trainers": trainers,
        "gpu_pids": gpu_pids,
        "left": live_processes(marker),
        "gpu_pids_after": gpu_compute_pids(),
        "files": checkpoint_digests(project),
    }


@pytest.fixture(scope="module")
def resumed(project, cancelled, metrics):
    run = CliRun.start(project, {"HF_HUB_OFFLINE": "1"})
    with GpuMemoryPoller() as memory:
        code = run.finish(timeout=RUN_SECONDS)
    _keep_output("resumed_run.log", run.text)
    rates = _training_rates(project)
    metrics["resume_peak_gpu_memory_mib"] = memory.peak_above_baseline
    metrics["train_seconds_per_step"] = rates
    return {"code": code, "output": run.text, "events": checkpoint_events(project)}


def test_musubi_made_the_caches_the_graph_lists(project, cancelled):
    assert cancelled["first"], cancelled["output"]
    text_caches = sorted((project / "out" / "cache" / "text").glob("*_wan_te.safetensors"))
    assert len(text_caches) == 5
    embedding = load_text_cache(text_caches[0])
    assert embedding.shape[-1] == 4096 and torch.isfinite(embedding.float()).all()
    latents = sorted((project / "out" / "cache" / "video").glob("*_wan.safetensors"))
    assert latents and all("_0064x0048_" in path.name for path in latents)


def test_ctrl_c_ends_every_musubi_process_and_frees_the_gpu(cancelled):
    assert cancelled["code"] == 130, cancelled["output"]
    assert cancelled["seconds"] < CANCEL_SECONDS
    assert cancelled["trainers"], "the trainer was not running when the checkpoint landed"
    assert cancelled["gpu_pids"] & set(cancelled["trainers"]), "nvidia-smi did not list it"
    assert cancelled["left"] == {}
    assert not cancelled["gpu_pids_after"] & set(cancelled["trainers"])
    (key, metadata), *others = cancelled["first"].items()
    assert not others and key.endswith("-e0001") and metadata["epoch"] == 1


def test_the_resumed_run_lands_the_second_checkpoint_and_rewrites_none(project, cancelled, resumed):
    assert resumed["code"] == 0, resumed["output"][-3000:]
    check_resumed(project, cancelled["files"], resumed["events"], EPOCHS)


def test_wan_generate_video_made_one_eval_video_per_checkpoint(project, resumed):
    videos = sorted((project / "out" / "eval").glob("*/*.mp4"))
    assert len(videos) == EPOCHS, videos
    for video in videos:
        with av.open(str(video)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert len(frames) == 9 and frames[0].shape == (48, 64, 3)
    assert (project / "out" / "best" / "adapter_model.safetensors").is_file()


def _training_rates(project: Path) -> list[float]:
    """musubi's s/it as the lora_checkpoints steps logged it into the Dagster run log."""
    instance = project_instance(project)
    rates = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            if entry.step_key == "lora_checkpoints" and (found := _RATE.search(entry.message)):
                rates.append(float(found.group(1)))
    return rates


def _keep_output(name: str, text: str) -> None:
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / name).write_text(text)
