"""musubi-tuner's console output read back: tqdm bars, epoch lines, saved files.

wan_train_network (training/trainer_base.py at commit 30c658c) prints, through accelerator.print,
`  num batches per epoch / 1epochのバッチ数: N`, `  total optimization steps / 学習ステップ数: N`
and `epoch E/N` before each epoch, and draws `tqdm(range(max_train_steps), desc="steps")` with
`set_postfix(avr_loss=...)` on stderr, e.g. (measured on an H100, benchmarks/README.md):
`steps: 100%|██████████| 24/24 [00:32<00:00,  1.37s/it, avr_loss=3.05]`.
Its step and epoch counters start at zero in every process, even one resumed from a saved state:
`TrainingLog` adds the steps done before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from wan_lora_dagster.engines.base import Progress
from wan_lora_dagster.engines.training_plan import epoch_of

_BAR = re.compile(
    r"(?:(?P<description>[^|\[\]]*?):\s*)?"  # "steps: "
    r"(?:\d+%\|[^|]*\|\s*)?"  # " 50%|█████     | "
    r"(?P<done>\d+)(?:/(?P<total>\d+)|it)\s*"  # "12/24", or "3it" when the total is unknown
    r"\[[^,\]]*"  # "[00:16<00:16"
    r"(?:,\s*(?P<rate>[\d.]+|\?)(?P<unit>s/it|it/s))?"  # ", 1.37s/it" or ", 2.10it/s"
    r"(?:,\s*(?P<postfix>[^\]]*))?\]"  # ", avr_loss=3.05]"
)
_STEPS_PER_EPOCH = re.compile(r"num batches per epoch\b[^:]*:\s*(\d+)")
_TOTAL_STEPS = re.compile(r"total optimization steps\b[^:]*:\s*(\d+)")
_EPOCH = re.compile(r"^epoch (\d+)/(\d+)$")
_SAVED_VIDEO = re.compile(r"Video saved to: (.+?)\s*$")
TRAINING_BAR = "steps"


@dataclass(frozen=True)
class BarUpdate:
    """One redraw of a tqdm bar. total is None for a bar over a generator ("3it [...]")."""

    description: str
    done: int
    total: int | None
    seconds_per_unit: float | None
    postfix: dict[str, str] = field(default_factory=dict)


def parse_bar(line: str) -> BarUpdate | None:
    match = _BAR.search(line)
    if match is None:
        return None
    rate, unit = match["rate"], match["unit"]
    seconds = None
    if rate and rate != "?" and float(rate) > 0:
        seconds = float(rate) if unit == "s/it" else 1 / float(rate)
    postfix = dict(
        part.split("=", 1) for part in (match["postfix"] or "").split(", ") if "=" in part
    )
    return BarUpdate(
        description=(match["description"] or "").strip(),
        done=int(match["done"]),
        total=int(match["total"]) if match["total"] else None,
        seconds_per_unit=seconds,
        postfix={key.strip(): value.strip() for key, value in postfix.items()},
    )


def saved_video(line: str) -> Path | None:
    """wan_generate_video.save_video logs `Video saved to: <save_path>/<time>_<seed>.mp4`."""
    match = _SAVED_VIDEO.search(line)
    return Path(match[1]) if match else None


class TrainingLog:
    """Turns wan_train_network's lines into Progress counted over the whole run.

    start_step: steps done before this process (by earlier processes that this one resumes).
    """

    def __init__(self, start_step: int = 0):
        self.start_step = start_step
        self.steps_per_epoch: int | None = None
        self.segment_steps: int | None = None
        self.done = start_step
        self.loss: float | None = None
        self.seconds_per_step: float | None = None

    @property
    def total(self) -> int:
        return self.start_step + (self.segment_steps or 0)

    def epoch_of(self, step: int) -> int | None:
        if not self.steps_per_epoch:
            return None
        return epoch_of(step, self.steps_per_epoch)

    def read(self, line: str) -> Progress | None:
        """The progress a line reports, or None for a line that reports none."""
        text = line.strip()
        if match := _STEPS_PER_EPOCH.search(text):
            self.steps_per_epoch = int(match[1])
        elif match := _TOTAL_STEPS.search(text):
            self.segment_steps = int(match[1])
        elif match := _EPOCH.match(text):
            return self._progress(epoch=self._run_epoch(int(match[1])))
        elif (bar := parse_bar(text)) and bar.description == TRAINING_BAR:
            return self._read_bar(bar)
        return None

    def _read_bar(self, bar: BarUpdate) -> Progress:
        if bar.total is not None:
            self.segment_steps = bar.total
        self.done = self.start_step + bar.done
        self.seconds_per_step = bar.seconds_per_unit or self.seconds_per_step
        if "avr_loss" in bar.postfix:
            self.loss = _float_or_none(bar.postfix["avr_loss"])
        return self._progress(epoch=self.epoch_of(self.done))

    def _run_epoch(self, segment_epoch: int) -> int:
        """musubi's epoch E of this process, as an epoch of the whole run."""
        if not self.steps_per_epoch:
            return segment_epoch
        return self.start_step // self.steps_per_epoch + segment_epoch

    def _progress(self, epoch: int | None) -> Progress:
        return Progress(
            "train",
            self.done,
            max(self.total, self.done),
            seconds_per_unit=self.seconds_per_step,
            loss=self.loss,
            epoch=epoch,
        )


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
