"""musubi-tuner's console lines read back into progress.

The bar lines are as tqdm draws them for `tqdm(range(N), desc="steps")` with
`set_postfix(avr_loss=...)` (training/trainer_base.py, commit 30c658c); the first is the line
measured on an H100 (benchmarks/README.md). The other lines are its accelerator.print calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi.progress import TrainingLog, parse_bar, saved_video

MEASURED = "steps: 100%|██████████| 24/24 [00:32<00:00,  1.37s/it, avr_loss=3.05]"


def test_the_measured_bar_line():
    bar = parse_bar(MEASURED)
    assert (bar.description, bar.done, bar.total) == ("steps", 24, 24)
    assert bar.seconds_per_unit == pytest.approx(1.37)
    assert bar.postfix == {"avr_loss": "3.05"}


@pytest.mark.parametrize(
    ("line", "done", "total", "seconds"),
    [
        ("steps:   0%|          | 0/24 [00:00<?, ?it/s]", 0, 24, None),
        ("steps:  21%|██        | 5/24 [00:01<00:05,  4.00it/s, avr_loss=0.0853]", 5, 24, 0.25),
        ("100%|██████████| 3/3 [00:05<00:00,  1.70s/it]", 3, 3, 1.7),
        ("3it [00:05,  1.70s/it]", 3, None, 1.7),  # a bar over a generator: no total
    ],
)
def test_bar_lines(line, done, total, seconds):
    bar = parse_bar(line)
    assert (bar.done, bar.total) == (done, total)
    assert bar.seconds_per_unit == (pytest.approx(seconds) if seconds else None)


@pytest.mark.parametrize(
    "line",
    ["epoch 1/16", "INFO:musubi_tuner.dataset.config_utils:[Dataset 0]", "resolution: (960, 544)"],
)
def test_lines_that_are_not_bars(line):
    assert parse_bar(line) is None


def test_a_training_run_read_line_by_line():
    log = TrainingLog()
    lines = [
        "running training / 学習開始",
        "  num train items / 学習画像、動画数: 12",
        "  num batches per epoch / 1epochのバッチ数: 12",
        "  num epochs / epoch数: 2",
        "  total optimization steps / 学習ステップ数: 24",
        "epoch 1/2",
        "steps:   0%|          | 0/24 [00:00<?, ?it/s]",
        "steps:  50%|█████     | 12/24 [00:16<00:16,  1.37s/it, avr_loss=3.2]",
        "epoch 2/2",
        "steps:  54%|█████▍    | 13/24 [00:17<00:15,  1.37s/it, avr_loss=3.1]",
        MEASURED,
    ]
    reports = [report for line in lines if (report := log.read(line))]
    assert [(r.done, r.total, r.epoch) for r in reports] == [
        (0, 24, 1),
        (0, 24, 1),
        (12, 24, 1),
        (12, 24, 2),
        (13, 24, 2),
        (24, 24, 2),
    ]
    assert reports[-1].loss == pytest.approx(3.05)
    assert reports[-1].seconds_per_unit == pytest.approx(1.37)
    assert log.steps_per_epoch == 12


def test_a_resumed_process_counts_on_from_the_steps_done_before():
    """musubi restarts its bar at 0 on --resume: 14 steps were done by the earlier launch."""
    log = TrainingLog(start_step=14)
    log.read("  num batches per epoch / 1epochのバッチ数: 7")
    epoch_line = log.read("epoch 1/2")
    report = log.read("steps:  50%|█████     | 7/14 [00:01<00:01,  0.20s/it, avr_loss=0.5]")
    assert epoch_line.epoch == 3
    assert (report.done, report.total, report.epoch, report.loss) == (21, 28, 3, 0.5)


def test_loss_that_is_not_a_number_is_left_out():
    log = TrainingLog()
    report = log.read("steps:  50%|█████     | 1/2 [00:01<00:01,  1.00s/it, avr_loss=oops]")
    assert report.done == 1 and report.loss is None


def test_saved_video_line():
    line = "INFO:__main__:Video saved to: /out/samples/20261122-101010-123_42.mp4"
    assert saved_video(line) == Path("/out/samples/20261122-101010-123_42.mp4")
    assert saved_video("INFO:__main__:Decoding output 1/3") is None
