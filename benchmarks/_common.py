"""What the three benchmarks share: quiet in-process `wan-lora` runs, timers, films, tables.

Benchmarks run the command in this process (as tests/e2e does) so that timing wrappers can see
inside it; the one-off cost of starting a `wan-lora` process is measured on its own.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from wan_lora_dagster.cli import main as wan_lora_main
from wan_lora_dagster.media.ffmpeg import find_ffmpeg
from wan_lora_dagster.media.synthetic import make_synthetic_film

warnings.filterwarnings("ignore", message=".*is currently in beta.*")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # its notes bypass hidden stderr


TORCH_THREADS = 1


def use_steady_torch_threads() -> None:
    """One torch thread, on both sides of a comparison. On this 2-core machine, shared with other
    work, two threads made the same 64 tiny-model training steps take 3 to 24 s (each parallel
    region waits for the thread that is not scheduled); one thread took 2.4 to 3.5 s."""
    import torch

    torch.set_num_threads(TORCH_THREADS)


def machine_load() -> str:
    """Cores and load average: other work on a shared machine stretches every wall time."""
    one_minute, five_minutes, _ = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, load average {one_minute:.1f} (1 min), {five_minutes:.1f} (5 min)"
    )


def print_machine(load_at_start: str) -> None:
    print(f"\n  machine at the start: {load_at_start}; at the end: {machine_load()}")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help="a quick smoke run (under a minute)")
    return parser.parse_args()


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A temporary folder for everything a benchmark builds; removed at the end."""
    with tempfile.TemporaryDirectory(prefix=f"wan-lora-bench-{name}-") as directory:
        yield Path(directory)


@dataclass
class Measured:
    """Wall seconds, and CPU seconds of this process and of the children it waited for (ffmpeg).

    On a shared machine the CPU time moves far less than the wall time when others are busy.
    """

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def measured() -> Iterator[Measured]:
    result = Measured()
    started_wall, started_cpu = time.perf_counter(), _cpu_seconds()
    yield result
    result.wall = time.perf_counter() - started_wall
    result.cpu = _cpu_seconds() - started_cpu


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_wan_lora(*args: object) -> tuple[Measured, dict]:
    """`wan-lora ARGS --json` in this process, output hidden: (its times, its JSON summary).

    Exits with the command's error output when the command fails: a failed run times nothing.
    """
    out, err = io.StringIO(), io.StringIO()
    with measured() as seconds, redirect_stdout(out), redirect_stderr(err):
        status = wan_lora_main([*(str(arg) for arg in args), "--json"])
    if status != 0:
        sys.exit(
            f"wan-lora {' '.join(map(str, args))} failed ({status}):\n{err.getvalue()[-3000:]}"
        )
    return seconds, json.loads(out.getvalue())


def made_counts(summary: dict) -> dict[str, int]:
    """Asset -> partitions materialized, for the assets of a run summary that made any."""
    return {
        asset: len(stage["materialized"])
        for asset, stage in summary.items()
        if stage["materialized"]
    }


def command_startup_seconds(repeats: int) -> float:
    """Median wall time of a fresh Python importing what `wan-lora run` imports: paid once per
    command, before any asset work."""
    code = "import wan_lora_dagster.cli, wan_lora_dagster.runner"
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Parts:
    """What Timers saw in one stretch: wall and CPU seconds and work units, per bucket.

    `cpu` is the whole process's (and its waited-for children's) CPU time during each call;
    `thread_cpu` the calling thread's own, which stays exact while other threads work at once.
    """

    wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    thread_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    units: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Timers:
    """Wall and CPU time and work units of functions, wrapped in place until `restore`.

    `wrap(owner, name, label)` replaces owner.name (a module function or a class's method) with a
    timed wrapper (`timed` makes one for any callable); `label` names the bucket, or derives it
    from the call's arguments, and `units` counts the work a call was given (one per call by
    default). Nested wrapped calls are each counted in full: subtract to get exclusive times.
    """

    def __init__(self):
        self.parts = Parts()
        self._originals: list[tuple[object, str, object]] = []
        self._lock = threading.Lock()

    def wrap(
        self,
        owner: object,
        name: str,
        label: str | Callable[..., str],
        units: Callable[..., int] = lambda *args, **kwargs: 1,
    ) -> None:
        self.patch(owner, name, self.timed(getattr(owner, name), label, units))

    def timed(
        self,
        function: Callable,
        label: str | Callable[..., str],
        units: Callable[..., int] = lambda *args, **kwargs: 1,
    ) -> Callable:
        """`function`, timed into the bucket `label` names."""

        @functools.wraps(function)
        def timed(*args, **kwargs):
            bucket = label(*args, **kwargs) if callable(label) else label
            thread_started = time.thread_time()
            with measured() as seconds:
                result = function(*args, **kwargs)
            thread_cpu = time.thread_time() - thread_started
            with self._lock:  # the calls of a thread pool end at once
                self.parts.units[bucket] += units(*args, **kwargs)
                self.parts.wall[bucket] += seconds.wall
                self.parts.cpu[bucket] += seconds.cpu
                self.parts.thread_cpu[bucket] += thread_cpu
            return result

        return timed

    def patch(self, owner: object, name: str, replacement: object) -> None:
        """Set owner.name to `replacement` until `restore`."""
        self._originals.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    def take(self) -> Parts:
        """What was seen since the last take."""
        taken, self.parts = self.parts, Parts()
        return taken

    def restore(self) -> None:
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()


RUNNER_SETUP = "runner set-up"
RUNNER_SYNC = "runner sync"


def stage_label(asset: str) -> str:
    return f"stage {asset}"


def dagster_run_label(asset: str) -> str:
    return f"dagster run {asset}"


def time_runner(timers: Timers) -> None:
    """Split a `wan-lora run` into set-up (instance, definitions), sync (partitions, observations,
    file hashes), each stage (freshness checks and its Dagster runs) and its Dagster runs."""
    from wan_lora_dagster.runner import ProjectRunner

    timers.wrap(ProjectRunner, "__init__", RUNNER_SETUP)
    timers.wrap(ProjectRunner, "sync", RUNNER_SYNC)
    timers.wrap(ProjectRunner, "_run_stage", lambda _self, asset: stage_label(asset))
    timers.wrap(
        ProjectRunner,
        "_execute",
        lambda _self, asset, *_keys_and_claimant: dagster_run_label(asset),
    )


def runner_rows(total: float, parts: dict[str, float], asset: str, step_work: float) -> list:
    """(name, exclusive seconds) of a one-stage `wan-lora run` around `step_work`, the seconds
    the asset's own work took inside its Dagster runs."""
    stage, dagster = parts.get(stage_label(asset), 0.0), parts.get(dagster_run_label(asset), 0.0)
    setup, sync = parts.get(RUNNER_SETUP, 0.0), parts.get(RUNNER_SYNC, 0.0)
    return [
        ("Dagster run around the step (events)", dagster - step_work),
        ("runner freshness checks before/after", stage - dagster),
        ("runner set-up (instance, definitions)", setup),
        ("runner sync (partitions, observations)", sync),
        ("CLI rest (project, summary)", total - stage - setup - sync),
    ]


def make_long_film(
    path: Path, duration: float, size: tuple[int, int], segment_seconds: float
) -> Path:
    """A synthetic film drawn segment by segment (one scene each, a hard cut between them) and
    joined without re-encoding: a long film never has to fit in memory as raw frames."""
    parts_dir = path.parent / f".{path.stem}-segments"
    count = max(1, round(duration / segment_seconds))
    parts = [
        make_synthetic_film(
            parts_dir / f"{index:03d}.mp4",
            duration=duration / count,
            size=size,
            num_scenes=1,
            seed=index,
        )
        for index in range(count)
    ]
    listing = parts_dir / "parts.txt"
    listing.write_text("".join(f"file '{part}'\n" for part in parts))
    subprocess.run(
        [
            *(find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y"),
            *("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path)),
        ],
        check=True,
    )
    shutil.rmtree(parts_dir)
    return path


def link_or_copy(source: Path, target: Path) -> None:
    """Put a film in a project without doubling its bytes on disk where a hard link works."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def alternate(repeats: int, first: Callable[[int], None], second: Callable[[int], None]) -> None:
    """Call both sides `repeats` times, swapping which goes first, so that both share the
    machine's slow and fast moments fairly."""
    for repeat in range(repeats):
        for side in (first, second) if repeat % 2 == 0 else (second, first):
            side(repeat)


def median_index(values: list[float]) -> int:
    """The index of the median value (the lower middle one of an even count)."""
    return sorted(range(len(values)), key=values.__getitem__)[(len(values) - 1) // 2]


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_side_times(
    sides: dict[str, list[Measured]], per_median: tuple[str, Callable[[float], float]]
) -> None:
    """Two tables, wall and CPU seconds: each run of each side, the median, and `per_median`
    (a column name, and what to show for a median: a time per clip, steps per second)."""
    repeats = len(next(iter(sides.values())))
    header = ["side", *(f"run {index + 1}" for index in range(repeats)), "median", per_median[0]]
    titles = {"wall": "Wall time (s)", "cpu": "CPU time (s; this process and its children)"}
    for kind, title in titles.items():
        rows = []
        for name, runs in sides.items():
            values = [getattr(run, kind) for run in runs]
            rows.append([name, *values, median(values), per_median[1](median(values))])
        print_table(title, header, rows)


def median_of(runs: list[Measured], kind: str) -> float:
    return median([getattr(run, kind) for run in runs])


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [header, *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        rest = zip(row[1:], widths[1:], strict=True)
        line = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in rest)]
        print("  " + "  ".join(line).rstrip())
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
