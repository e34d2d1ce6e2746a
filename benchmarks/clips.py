"""Our `clips` stage vs. plain loops of the same ffmpeg commands, side by side in one run.

Ours: `wan-lora run --select clips` on a fresh project (a new Dagster instance each time). Plain:
one subprocess per range, nothing else. The loop a user would type runs ffmpeg as it comes (its
own threads; the argv of `ffmpeg_cut_command` without the `-threads` our stage adds); the same
loop with our exact argv is shown beside it; and both run as many at a time as the machine has
cores (our stage cuts on every core). Our stage cuts nearby ranges with one ffmpeg per group
(media/cut_group.py); it also counts each clip's frames by decoding it, looks for scene cuts and
draws a thumbnail strip; those parts, and the Dagster and runner work around them, are timed on
their own, in CPU time: the clips are made on every core at once, so
their wall times overlap, while CPU times add up to the run's.

    .venv/bin/python benchmarks/clips.py [--small]
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from _common import (
    RUNNER_SETUP,
    RUNNER_SYNC,
    Measured,
    Timers,
    alternate,
    command_startup_seconds,
    dagster_run_label,
    link_or_copy,
    machine_load,
    made_counts,
    make_long_film,
    measured,
    median_index,
    median_of,
    parse_args,
    print_machine,
    print_side_times,
    print_table,
    run_wan_lora,
    scratch_dir,
    stage_label,
    time_runner,
)

from wan_lora_dagster.assets import partitioned
from wan_lora_dagster.media import cut
from wan_lora_dagster.media.cut import CutSettings, ffmpeg_cut_command
from wan_lora_dagster.media.thumbnails import StripFrames
from wan_lora_dagster.pipeline import dataset
from wan_lora_dagster.resources import FfmpegResource
from wan_lora_dagster.scaffold import DEMO_RECIPE, init_project

FILM_SIZE = (640, 360)
RANGE_SPACING = 3.0  # one range starts every 3 s; lengths cycle through 2.0, 2.25, 2.5 s
GOAL_RATIO = 1.10  # ours within this of our exact argv run on every core
GOAL_SPEED_UP = 1.8  # ours this many times the throughput of the user's one-at-a-time loop
CORES = os.cpu_count() or 1
OURS = "ours: wan-lora run --select clips"
USER_LOOP = "plain: loop of ffmpeg, its own threads"
OUR_ARGV_LOOP = "plain: loop of our argv (-threads 1)"
OUR_ARGV_CORES = f"plain: our argv, {CORES} at a time"
USER_CORES = f"plain: ffmpeg, its own threads, {CORES} at a time"
FFMPEG_CPU = "ffmpeg processes"  # Parts.thread_cpu buckets filled by time_ours
MAIN_THREAD = "main thread"
OURS_CPU = "ours, this process"
POOL = "the pool"  # the stretch of a run in which clips are cut and checked on every core


@dataclass(frozen=True)
class Scale:
    film_seconds: float
    repeats: int

    @property
    def num_ranges(self) -> int:
        return round(self.film_seconds / RANGE_SPACING)


DEFAULT = Scale(film_seconds=120.0, repeats=3)
SMALL = Scale(film_seconds=24.0, repeats=1)


def clip_ranges(scale: Scale) -> list[tuple[float, float]]:
    return [
        (index * RANGE_SPACING + 0.25, index * RANGE_SPACING + 0.25 + 2.0 + 0.25 * (index % 3))
        for index in range(scale.num_ranges)
    ]


def time_ours(
    film: Path, ranges: list[tuple[float, float]], directory: Path
) -> tuple[Measured, dict[str, float]]:
    """The run's times, and its CPU seconds: all ffmpeg processes', this process's main
    thread's, and this process's in all."""
    project = init_project(directory, DEMO_RECIPE)
    link_or_copy(film, project / "films" / "film.mp4")
    lines = "".join(f"{start:.2f} {end:.2f}\n" for start, end in ranges)
    (project / "ranges" / "film.txt").write_text(lines)
    before, main_before = os.times(), time.thread_time()
    times, summary = run_wan_lora("run", "--project", project, "--select", "clips")
    main_thread, after = time.thread_time() - main_before, os.times()
    if made_counts(summary).get("clips") != len(ranges):
        raise SystemExit(f"our stage made {made_counts(summary)} clips, expected {len(ranges)}")
    cpu = {
        FFMPEG_CPU: after.children_user
        + after.children_system
        - before.children_user
        - before.children_system,
        MAIN_THREAD: main_thread,
        OURS_CPU: after.user + after.system - before.user - before.system,
    }
    return times, cpu


def time_plain(
    film: Path,
    ranges: list[tuple[float, float]],
    directory: Path,
    settings: CutSettings,
    at_a_time: int = 1,
) -> Measured:
    directory.mkdir(parents=True)
    commands = [
        ffmpeg_cut_command(film, start, end, directory / f"clip{index:03d}.mp4", settings)
        for index, (start, end) in enumerate(ranges)
    ]
    with measured() as times, ThreadPoolExecutor(at_a_time) as pool:
        list(
            pool.map(
                lambda command: subprocess.run(command, check=True, capture_output=True), commands
            )
        )
    return times


def time_clip_parts(timers: Timers) -> None:
    timers.wrap(partitioned, "make_groups_in_parallel", POOL)
    timers.wrap(dataset, "make_clips", "make_clips")
    timers.wrap(StripFrames, "save", "thumbnail")
    timers.wrap(cut, "probe_video", "decode")
    time_runner(timers)


def breakdown_rows(cpu: dict[str, float], num_clips: int) -> list[list[object]]:
    """Exclusive CPU times of our run's parts; they add up to the run's CPU time.

    The clip work runs in the pool's threads, the runner and Dagster in the main thread, so each
    thread's own CPU time (`thread_cpu`) splits the process's without overlaps.
    """
    get = cpu.get
    make, decode, png = get("make_clips", 0.0), get("decode", 0.0), get("thumbnail", 0.0)
    stage, dagster = get(stage_label("clips"), 0.0), get(dagster_run_label("clips"), 0.0)
    setup, sync, main = get(RUNNER_SETUP, 0.0), get(RUNNER_SYNC, 0.0), get(MAIN_THREAD, 0.0)
    named = [
        ("ffmpeg cut (child processes)", get(FFMPEG_CPU, 0.0)),
        ("one decode: frame count, scene cuts, strip", decode),
        ("thumbnail strip PNG (4 frames, 64 colours)", png),
        ("rest of the clip work (start ffmpeg, record)", make - decode - png),
        ("Dagster run around the step (main thread)", dagster),
        ("runner freshness checks before/after", stage - dagster),
        ("runner set-up (instance, definitions)", setup),
        ("runner sync (partitions, observations)", sync),
        ("CLI rest (project, summary)", main - stage - setup - sync),
        ("other threads (Dagster's, Python's)", get(OURS_CPU, 0.0) - main - make),
    ]
    total = sum(seconds for _, seconds in named)
    rows = [
        [name, seconds, 1000 * seconds / num_clips, f"{100 * seconds / total:.0f}%"]
        for name, seconds in named
    ]
    rows.append(["total (ours, in process)", total, 1000 * total / num_clips, "100%"])
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    load_at_start = machine_load()
    scale = SMALL if args.small else DEFAULT
    ranges = clip_ranges(scale)
    ours_settings = FfmpegResource().cut_settings()  # the settings our stage cuts with
    user_settings = replace(ours_settings, threads=None)  # the same argv without -threads
    plain_sides = {
        USER_LOOP: (user_settings, 1),
        OUR_ARGV_LOOP: (ours_settings, 1),
        OUR_ARGV_CORES: (ours_settings, CORES),
        USER_CORES: (user_settings, CORES),
    }
    timers = Timers()
    with scratch_dir("clips") as scratch:
        film = make_long_film(
            scratch / "film.mp4", scale.film_seconds, FILM_SIZE, segment_seconds=15.0
        )
        time_clip_parts(timers)
        time_ours(film, ranges[:1], scratch / "warm-up-ours")  # imports, first Dagster run
        time_plain(film, ranges[:1], scratch / "warm-up-plain", ours_settings)
        timers.take()
        sides: dict[str, list[Measured]] = {OURS: [], **{name: [] for name in plain_sides}}
        cpu_parts: list[dict[str, float]] = []

        def run_ours(repeat: int) -> None:
            times, cpu = time_ours(film, ranges, scratch / f"ours-{repeat}")
            sides[OURS].append(times)
            parts = timers.take()
            cpu_parts.append({**parts.thread_cpu, **cpu, POOL: parts.wall[POOL]})

        def run_plain(repeat: int) -> None:
            for index, (name, (settings, at_a_time)) in enumerate(plain_sides.items()):
                directory = scratch / f"plain{index}-{repeat}"
                sides[name].append(time_plain(film, ranges, directory, settings, at_a_time))

        alternate(scale.repeats, run_ours, run_plain)
        timers.restore()
    startup = command_startup_seconds(repeats=scale.repeats)
    report(scale, sides, cpu_parts, startup, load_at_start)


def report(
    scale: Scale,
    sides: dict[str, list[Measured]],
    cpu_parts: list[dict[str, float]],
    startup: float,
    load_at_start: str,
) -> None:
    num = scale.num_ranges
    print(
        f"clips: {num} ranges of 2.0-2.5 s from a {scale.film_seconds:.0f} s "
        f"{FILM_SIZE[0]}x{FILM_SIZE[1]} 24 fps synthetic film; cut to 16 fps h264; "
        f"{scale.repeats} run(s) per side, alternating"
    )
    print_side_times(sides, per_median=("ms/clip", lambda seconds: 1000 * seconds / num))
    ours_cpu = [run.cpu for run in sides[OURS]]
    typical = median_index(ours_cpu)
    print_table(
        f"Where our CPU time goes (run {typical + 1}, the median one)",
        ["part", "s", "ms/clip", "share"],
        breakdown_rows(cpu_parts[typical], num),
    )
    parts = cpu_parts[typical]
    checks = parts.get("decode", 0.0) + parts.get("thumbnail", 0.0)
    print(
        f"\n  ours - our argv {CORES} at a time (median CPU): "
        f"{median_of(sides[OURS], 'cpu') - median_of(sides[OUR_ARGV_CORES], 'cpu'):.2f} s; "
        f"in the median run the per-clip checks (one decode for frame count, scene cuts and "
        f"strip; the PNG) took {checks:.2f} s of CPU, this process outside the clip work "
        f"{parts.get(OURS_CPU, 0.0) - parts.get('make_clips', 0.0):.2f} s."
    )
    pool, wall = parts[POOL], sides[OURS][typical].wall
    print(
        f"  wall time of the median run: {pool:.2f} s in the pool that cuts and checks clips on "
        f"every core, {wall - pool:.2f} s before and after it (set-up, sync, the Dagster run's "
        "events), mostly on one core"
    )
    print(
        f"  command start-up (a fresh python importing wan-lora and dagster): {startup:.2f} s, "
        "paid once per command, not in the in-process times above"
    )
    print_machine(load_at_start)
    print_ratios(sides, startup)


def print_ratios(sides: dict[str, list[Measured]], startup: float) -> None:
    """Throughput against the user's one-at-a-time loop, wall time against our argv on every
    core, and the plain variants against each other."""
    wall = {name: median_of(runs, "wall") for name, runs in sides.items()}
    cpu = {name: median_of(runs, "cpu") for name, runs in sides.items()}
    ours = wall[OURS]
    print(
        f"\nthroughput ours / plain one at a time:              {wall[USER_LOOP] / ours:.2f}x  "
        f"(goal: at least {GOAL_SPEED_UP:.1f}x; the loop of ffmpeg with its own threads)"
    )
    print(
        f"ratio ours/plain {CORES} at a time, wall, in process:    "
        f"{ours / wall[OUR_ARGV_CORES]:.2f}x  (goal: within {GOAL_RATIO:.2f}x; our argv)"
    )
    print(
        f"ratio ours/plain {CORES} at a time, wall, with start-up: "
        f"{(ours + startup) / wall[OUR_ARGV_CORES]:.2f}x"
    )
    print(
        f"ratio ours/plain {CORES} at a time, CPU time, in process: "
        f"{cpu[OURS] / cpu[OUR_ARGV_CORES]:.2f}x"
    )
    print(
        f"plain loops, -threads 1 / ffmpeg's own threads:    wall "
        f"{wall[OUR_ARGV_LOOP] / wall[USER_LOOP]:.2f}x, "
        f"CPU {cpu[OUR_ARGV_LOOP] / cpu[USER_LOOP]:.2f}x"
    )
    print(
        f"plain {CORES} at a time, -threads 1 / own threads:     wall "
        f"{wall[OUR_ARGV_CORES] / wall[USER_CORES]:.2f}x, "
        f"CPU {cpu[OUR_ARGV_CORES] / cpu[USER_CORES]:.2f}x"
    )


if __name__ == "__main__":
    main()
