"""The musubi engine on several GPUs and with TensorBoard: what `accelerate launch` and
wan_train_network are told (flag names as in accelerate's launcher and musubi-tuner 30c658c's
training/parser_common.py)."""

from __future__ import annotations

import sys
from dataclasses import replace

from wan_lora_dagster.testing.musubi_fixtures import train_request


def value_of(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def training_command(engine, manifest, output_dir, **request_fields):
    request = replace(train_request(manifest, engine.settings, output_dir), **request_fields)
    *_, command = engine.plan(request)
    return command[command.index(sys.executable) :]


def test_two_gpus_launch_two_data_parallel_processes(make_engine, manifest, tmp_path):
    launch = training_command(make_engine(gpus=2), manifest, tmp_path / "checkpoints")

    script = next(index for index, part in enumerate(launch) if part.endswith(".py"))
    assert "--multi_gpu" in launch[:script]
    assert value_of(launch[:script], "--num_processes") == "2"


def test_one_gpu_launches_one_process(make_engine, manifest, tmp_path):
    launch = training_command(make_engine(), manifest, tmp_path / "checkpoints")

    assert "--multi_gpu" not in launch
    assert value_of(launch, "--num_processes") == "1"


def test_training_logs_to_tensorboard_in_the_requests_log_folder(make_engine, manifest, tmp_path):
    logs = tmp_path / "logs" / "lora-abc123"
    launch = training_command(make_engine(), manifest, tmp_path / "checkpoints", log_dir=logs)

    assert value_of(launch, "--log_with") == "tensorboard"
    assert value_of(launch, "--logging_dir") == str(logs)
