"""The musubi engine against the REAL kohya-ss/musubi-tuner on a GPU, with the real t2v-1.3B
shapes (random weights: see gpu_fixtures.py): latents by wan_cache_latents, training by
`accelerate launch wan_train_network.py` with checkpoints landing as they are saved, cancellation
that leaves no process behind, and a resumed run that continues the cancelled one.

Opt-in: needs CUDA and MUSUBI_TUNER_DIR (a musubi-tuner checkout); about 3 GB of weights are
built once under WAN_LORA_TEST_WEIGHTS. Run with `pytest -s` to see the measured s/it and peak GPU
memory; where $OUT is set (the device machine) they go to $OUT/musubi_gpu_metrics.json too.
Not run: sampling through wan_generate_video, which needs a random 5.7B-parameter T5 (11 GB).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wan_lora_dagster.engines.musubi import EngineCancelled, MusubiEngine
from wan_lora_dagster.formats.cache_files import latent_cache_name, read_lora_header
from wan_lora_dagster.formats.musubi_cache import load_latent_cache
from wan_lora_dagster.testing.gpu_fixtures import (
    HEADER,
    ClipSpec,
    make_project,
    manifest_of,
    musubi_checkout,
    musubi_settings,
    random_weights,
    skip_reason,
    train_request,
    weights_dir,
)
from wan_lora_dagster.testing.gpu_watch import GpuMemoryPoller, gpu_compute_pids, live_processes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.musubi,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

SPEC = ClipSpec()  # 4 clips of 49 frames at 384x208, trained on 45 frames
STEPS_PER_EPOCH = SPEC.count  # batch 1, 1 repeat
LONG_EPOCHS = 4  # the run that is cancelled after its first checkpoint, then resumed
CANCEL_SECONDS = 10.0
LORA_KEY = "lora_unet_blocks_0_self_attn_q"


@pytest.fixture(scope="module")
def metrics():
    """What the run measured; printed, and written to $OUT/musubi_gpu_metrics.json if set."""
    found: dict = {}
    yield found
    print("\nmusubi GPU metrics:", json.dumps(found, indent=1))
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "musubi_gpu_metrics.json").write_text(json.dumps(found))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("musubi-gpu")


@pytest.fixture(scope="module")
def weights() -> dict[str, str]:
    return random_weights(weights_dir(), musubi_checkout())


@pytest.fixture(scope="module")
def project(workspace):
    return make_project(workspace / "project", SPEC)


@pytest.fixture(scope="module")
def output_log(workspace):
    """Every line musubi prints, kept for a failure's post-mortem ($OUT/musubi_output.log)."""
    folder = Path(os.environ.get("OUT", workspace))
    with open(folder / "musubi_output.log", "w", encoding="utf-8") as log:
        yield log


@pytest.fixture(scope="module")
def make_engine(project, weights, output_log):
    def make(work_name: str, **overrides) -> MusubiEngine:
        settings = musubi_settings(musubi_checkout(), weights, **overrides)
        write = lambda line: output_log.write(f"[{work_name}] {line}\n")  # noqa: E731
        return MusubiEngine(settings, project.root / "out" / work_name, on_output=write)

    return make


@pytest.fixture(scope="module")
def manifest(project, make_engine, metrics):
    """The clips encoded by the real wan_cache_latents: the training set of every test."""
    reports = []
    started = time.monotonic()
    written = make_engine("musubi").encode_latents(project.latent_jobs, reports.append)
    metrics["encode_latents_seconds"] = round(time.monotonic() - started, 1)
    assert (reports[-1].done, reports[-1].total) == (SPEC.count, SPEC.count)
    return written, manifest_of(project, written)


def test_latents_have_musubis_names_and_the_real_latent_shape(manifest, project):
    written, _ = manifest
    for job in project.latent_jobs:
        expected = job.cache_dir / latent_cache_name(
            job.item_id, SPEC.width, SPEC.height, 0, SPEC.target_frames
        )
        assert written[job.item_id] == [expected]
        cache = load_latent_cache(expected)
        # 16 channels, (45 - 1) / 4 + 1 frames, 1/8 of 208 x 384
        assert tuple(cache.latent.shape) == (16, 12, 26, 48)
        assert torch.isfinite(cache.latent.float()).all()
        assert cache.metadata["frame_count"] == str(SPEC.target_frames)


def test_training_lands_a_loadable_checkpoint_per_epoch(
    manifest, project, make_engine, workspace, metrics
):
    engine = make_engine("train-two")
    request = train_request(project, manifest[1], engine.settings, workspace / "two")
    reports, announced = [], []
    with GpuMemoryPoller() as memory:
        landed = engine.train(request, reports.append, announced.append)

    assert landed == announced
    assert [(info.epoch, info.step) for info in landed] == [(1, 4), (2, 8)]
    assert [info.path.name for info in landed] == [
        "lora-gpu-000001.safetensors",
        "lora-gpu-000002.safetensors",
    ]
    for info in landed:
        tensors = load_file(str(info.path))
        assert tensors[f"{LORA_KEY}.lora_down.weight"].shape == (32, 1536)
        assert tensors[f"{LORA_KEY}.lora_up.weight"].shape == (1536, 32)
        assert len([key for key in tensors if key.endswith(".lora_down.weight")]) > 30 * 4
        header = read_lora_header(info.path)
        assert {key: header[key] for key in HEADER} == HEADER
        assert (header["ss_epoch"], header["ss_steps"]) == (str(info.epoch), str(info.step))
    rates = _step_rates(reports)
    assert rates, "no s/it read from musubi's progress bar"
    assert reports[-1].done == reports[-1].total == 2 * STEPS_PER_EPOCH
    assert all(r.loss is None or r.loss == r.loss for r in reports), "loss is NaN"
    metrics["train_seconds_per_step_last_report"] = rates[-1]
    metrics["train_seconds_per_step_median_report"] = statistics.median(rates)
    metrics["train_peak_gpu_memory_mib"] = memory.peak_above_baseline
    metrics["train_last_loss"] = reports[-1].loss
    print(
        f"\ntraining: {statistics.median(rates):.3f} s/it (median of musubi's reports; last "
        f"{rates[-1]:.3f}), peak GPU memory {memory.peak_above_baseline} MiB above idle"
    )


@pytest.fixture(scope="module")
def cancelled_run(manifest, project, make_engine, workspace, metrics):
    """A 4-epoch run cancelled from another thread at the first progress report after its first
    checkpoint landed: (request, checkpoints landed, what was seen around the cancel)."""
    engine = make_engine("train-long", max_train_epochs=LONG_EPOCHS)
    request = train_request(project, manifest[1], engine.settings, workspace / "long")
    marker = str(engine.work_dir)
    landed, seen = [], {}
    report_after_checkpoint = threading.Event()

    def progress(report) -> None:
        if landed and not report_after_checkpoint.is_set():
            seen["processes"] = live_processes(marker)
            seen["gpu_pids"] = gpu_compute_pids()
            report_after_checkpoint.set()

    def train() -> None:
        try:
            engine.train(request, progress, landed.append)
        except BaseException as error:
            seen["error"] = error

    worker = threading.Thread(target=train)
    worker.start()
    assert report_after_checkpoint.wait(timeout=400), seen.get("error", "no checkpoint landed")
    started = time.monotonic()
    engine.cancel()
    worker.join(timeout=60)
    seen["cancel_seconds"] = time.monotonic() - started
    seen["after"] = live_processes(marker)
    seen["gpu_pids_after"] = _gpu_released(set(seen["processes"]), started + CANCEL_SECONDS)
    seen["gpu_release_seconds"] = time.monotonic() - started
    metrics["cancel_seconds"] = round(seen["cancel_seconds"], 2)
    metrics["gpu_release_seconds"] = round(seen["gpu_release_seconds"], 2)
    metrics["gpu_pids_while_training"] = sorted(seen["gpu_pids"])
    return request, list(landed), seen


def test_cancel_ends_every_training_process_within_seconds(cancelled_run):
    _, landed, seen = cancelled_run
    assert isinstance(seen.get("error"), EngineCancelled), seen.get("error")
    assert seen["cancel_seconds"] < CANCEL_SECONDS
    assert seen["processes"], "the training's processes were not found while it ran"
    groups = set(seen["processes"].values())
    assert seen["after"] == {}
    assert not any(group in groups for group in live_processes("").values())
    assert seen["gpu_pids"] & set(seen["processes"]), "nvidia-smi did not list the trainer"
    assert not seen["gpu_pids_after"] & set(seen["processes"]), "a pid still holds the GPU"
    assert landed and landed[0].epoch == 1


def test_resume_continues_the_cancelled_run(cancelled_run, make_engine, metrics):
    request, before, _ = cancelled_run
    digests = {info.path: _digest(info.path) for info in before}
    engine = make_engine("train-long", max_train_epochs=LONG_EPOCHS)
    reports, announced = [], []
    with GpuMemoryPoller() as memory:
        landed = engine.train(request, reports.append, announced.append)

    assert landed == announced
    every = before + landed
    assert [(info.epoch, info.step) for info in every] == [
        (epoch, epoch * STEPS_PER_EPOCH) for epoch in range(1, LONG_EPOCHS + 1)
    ]
    assert sorted(request.output_dir.glob("*.safetensors")) == [info.path for info in every]
    assert {path: _digest(path) for path in digests} == digests, "a checkpoint was rewritten"
    for info in landed:
        header = read_lora_header(info.path)
        assert (header["ss_epoch"], header["ss_steps"]) == (str(info.epoch), str(info.step))
    first_trained = min(report.done for report in reports if report.stage == "train")
    assert first_trained >= before[-1].step, "the resumed run started over"
    assert reports[-1].done == reports[-1].total == LONG_EPOCHS * STEPS_PER_EPOCH
    assert not (engine.work_dir / "train" / request.output_name / "journal.json").exists()
    metrics["resumed_from_step"] = before[-1].step
    metrics["resume_peak_gpu_memory_mib"] = memory.peak_above_baseline
    metrics["resume_seconds_per_step_median_report"] = statistics.median(_step_rates(reports))


def _step_rates(reports) -> list[float]:
    """musubi's s/it from each bar redraw after the first step (tqdm's first rate is bogus)."""
    return [
        r.seconds_per_unit
        for r in reports
        if r.stage == "train" and r.seconds_per_unit and r.done > 1
    ]


def _gpu_released(pids: set[int], deadline: float) -> set[int]:
    """nvidia-smi's compute pids once none of `pids` is among them, or at the deadline: the
    driver lists an ended process for a moment while it tears its context down."""
    while (listed := gpu_compute_pids()) & pids and time.monotonic() < deadline:
        time.sleep(0.1)
    return listed


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
