"""Cache encoding split over devices: two CPU "devices" stand in for two GPUs (real spawned
workers, the real tiny model), and must write what one process writes, each item once."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors import safe_open

from wan_lora_dagster.engines import create_engine
from wan_lora_dagster.engines.base import LatentJob, TextJob
from wan_lora_dagster.engines.devices import shares, split_over_devices, worker_devices
from wan_lora_dagster.engines.multi_device import MultiDeviceEngine
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.testing.device_workers import die_on_the_second_device, refuse, who_did_it
from wan_lora_dagster.testing.stripes import TRAINING, ignore_progress

TWO_CPUS = ["cpu", "cpu"]


def test_shares_hold_every_item_exactly_once():
    items = list(range(11))
    parts = shares(items, 3)
    assert sorted(item for part in parts for item in part) == items
    assert [len(part) for part in parts] == [4, 4, 3]


def test_each_item_goes_to_exactly_one_worker_process():
    done = split_over_devices(TWO_CPUS, list(range(7)), who_did_it, ignore_progress)
    assert sorted(done) == list(range(7))
    processes = {pid for _device, pid in done.values()}
    assert len(processes) == 2 and os.getpid() not in processes


def test_a_worker_error_reaches_the_step_as_itself():
    with pytest.raises(EngineError, match="no weights for"):
        split_over_devices(TWO_CPUS, ["a", "b"], refuse, ignore_progress)


def test_a_killed_worker_fails_the_step_instead_of_hanging_it():
    with pytest.raises(RuntimeError, match="exited with -9"):
        split_over_devices(TWO_CPUS, ["a", "b"], die_on_the_second_device, ignore_progress)


def test_devices_come_from_the_environment_or_every_gpu(monkeypatch):
    monkeypatch.setenv("WAN_LORA_DEVICES", "cuda:0, cuda:2")
    assert worker_devices() == ["cuda:0", "cuda:2"]
    assert worker_devices("cpu,cpu") == TWO_CPUS
    monkeypatch.delenv("WAN_LORA_DEVICES")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert worker_devices() == ["cuda:0", "cuda:1"]  # indices as the process sees them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert worker_devices() == []


def tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def assert_same_caches(split: dict, single: dict) -> None:
    assert {key: [p.name for p in _paths(v)] for key, v in split.items()} == {
        key: [p.name for p in _paths(v)] for key, v in single.items()
    }
    for key in single:
        for ours, theirs in zip(_paths(split[key]), _paths(single[key]), strict=True):
            mine, reference = tensors(ours), tensors(theirs)
            assert mine.keys() == reference.keys()
            for name in reference:
                torch.testing.assert_close(mine[name], reference[name], rtol=1e-5, atol=1e-6)


def _paths(value) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.slow
def test_two_workers_write_the_caches_one_process_writes(tmp_path, make_clip, section):
    out = tmp_path / "out"
    split = MultiDeviceEngine(TRAINING, out, TWO_CPUS)
    single = create_engine(TRAINING, out, device="cpu")
    texts = [f"a caption number {n}, stripes drifting" for n in range(5)]
    clips = [make_clip(tmp_path / f"c{n}.mp4", seed=n) for n in range(3)]
    for name, engine in (("split", split), ("single", single)):
        cache = tmp_path / name
        text_jobs = [TextJob(f"t{n}", text, cache) for n, text in enumerate(texts)]
        latent_jobs = [LatentJob(f"c{n}", clip, section, cache) for n, clip in enumerate(clips)]
        reports = []
        engine_written = (
            engine.encode_texts(text_jobs, reports.append),
            engine.encode_latents(latent_jobs, ignore_progress),
        )
        if name == "split":
            split_written, split_reports = engine_written, reports
        else:
            single_written = engine_written
    assert_same_caches(split_written[0], single_written[0])
    assert_same_caches(split_written[1], single_written[1])
    assert split_reports[-1].done == split_reports[-1].total == len(texts)
