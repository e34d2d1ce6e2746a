"""Our `clips` stage vs. plain loops of the same ffmpeg commands, side by side in one run.

Ours: `wan-lora run --select clips` on a fresh project (a new Dagster instance each time). Plain:
the identical argv from `ffmpeg_cut_command`, one subprocess per range, nothing else: one at a
time, and as many at a time as the machine has cores (our stage cuts on every core). Our stage
also counts each clip's frames by decoding it, looks for scene cuts and draws a thumbnail strip;
those parts, and the Dagster and runner work around them, are timed on their own.

    .venv/bin/python benchmarks/clips.py [--small]
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _common import (
    Measured,
    Timers,
    alternate,
    command_startup_seconds,
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
    runner_rows,
    scratch_dir,
    time_runner,
)

from wan_lora_dagster.media import cut
from wan_lora_dagster.media.cut import ffmpeg_cut_command
from wan_lora_dagster.media.thumbnails import StripFrames
from wan_lora_dagster.pipeline import dataset
from wan_lora_dagster.resources import FfmpegResource
from wan_lora_dagster.scaffold import DEMO_RECIPE, init_project

FILM_SIZE = (640, 360)
RANGE_SPACING = 3.0  # one range starts every 3 s; lengths cycle through 2.0, 2.25, 2.5 s
GOAL_RATIO = 1.10  # ours within this of the plain commands run on every core
GOAL_SPEED_UP = 1.8  # ours this many times the throughput of the plain one-at-a-time loop
CORES = os.cpu_count() or 1


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


def time_ours(film: Path, ranges: list[tuple[float, float]], directory: Path) -> Measured:
    project = init_project(directory, DEMO_RECIPE)
    link_or_copy(film, project / "films" / "film.mp4")
    lines = "".join(f"{start:.2f} {end:.2f}\n" for start, end in ranges)
    (project / "ranges" / "film.txt").write_text(lines)
    times, summary = run_wan_lora("run", "--project", project, "--select", "clips")
    if made_counts(summary).get("clips") != len(ranges):
        raise SystemExit(f"our stage made {made_counts(summary)} clips, expected {len(ranges)}")
    return times


def time_plain(
    film: Path, ranges: list[tuple[float, float]], directory: Path, at_a_time: int = 1
) -> Measured:
    settings = FfmpegResource().cut_settings()  # the settings our stage cuts with
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
    timers.wrap(dataset, "make_clip", "make_clip")
    timers.wrap(StripFrames, "save", "thumbnail")
    timers.wrap(cut, "_run", "ffmpeg")
    timers.wrap(cut, "probe_video", "decode")
    time_runner(timers)


def breakdown_rows(total: float, parts: dict[str, float], num_clips: int) -> list[list[object]]:
    """Exclusive times of our run's parts; they add up to `total`."""
    get = parts.get
    make = get("make_clip", 0.0)
    named = [
        ("ffmpeg cut (the plain loop's argv)", get("ffmpeg", 0.0)),
        ("one decode: frame count, scene cuts, strip", get("decode", 0.0)),
        ("thumbnail strip PNG (4 frames, 64 colours)", get("thumbnail", 0.0)),
    ]
    named.append(("rest of the clip work (rename, record)", make - sum(s for _, s in named)))
    named += runner_rows(total, parts, "clips", step_work=make)
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
    timers = Timers()
    with scratch_dir("clips") as scratch:
        film = make_long_film(
            scratch / "film.mp4", scale.film_seconds, FILM_SIZE, segment_seconds=15.0
        )
        time_clip_parts(timers)
        time_ours(film, ranges[:1], scratch / "warm-up-ours")  # imports, first Dagster run
        time_plain(film, ranges[:1], scratch / "warm-up-plain")
        timers.take()
        ours, plain, every_core, parts = [], [], [], []

        def run_ours(repeat: int) -> None:
            ours.append(time_ours(film, ranges, scratch / f"ours-{repeat}"))
            parts.append(timers.take().wall)

        def run_plain(repeat: int) -> None:
            plain.append(time_plain(film, ranges, scratch / f"plain-{repeat}"))
            every_core.append(time_plain(film, ranges, scratch / f"cores-{repeat}", CORES))

        alternate(scale.repeats, run_ours, run_plain)
        timers.restore()
    startup = command_startup_seconds(repeats=scale.repeats)
    report(scale, ours, plain, every_core, parts, startup, load_at_start)


def report(
    scale: Scale,
    ours: list,
    plain: list,
    every_core: list,
    parts: list,
    startup: float,
    load_at_start: str,
) -> None:
    num = scale.num_ranges
    print(
        f"clips: {num} ranges of 2.0-2.5 s from a {scale.film_seconds:.0f} s "
        f"{FILM_SIZE[0]}x{FILM_SIZE[1]} 24 fps synthetic film; cut to 16 fps h264; "
        f"{scale.repeats} run(s) per side, alternating"
    )
    print_side_times(
        {
            "ours: wan-lora run --select clips": ours,
            "plain: loop of the same ffmpeg argv": plain,
            f"plain: the same argv, {CORES} at a time": every_core,
        },
        per_median=("ms/clip", lambda seconds: 1000 * seconds / num),
    )
    ours_wall = [run.wall for run in ours]
    typical = median_index(ours_wall)
    print_table(
        f"Where our wall time goes (run {typical + 1}, the median one)",
        ["part", "s", "ms/clip", "share"],
        breakdown_rows(ours_wall[typical], parts[typical], num),
    )
    extra = median_of(ours, "wall") - median_of(plain, "wall")
    checks = sum(parts[typical].get(k, 0.0) for k in ("decode", "thumbnail"))
    print(
        f"\n  ours - plain (median wall): {extra:.2f} s; in the median run the per-clip checks "
        f"(one decode for frame count, scene cuts and strip; the PNG) took {checks:.2f} s and "
        "Dagster + runner "
        f"{ours_wall[typical] - parts[typical].get('make_clip', 0.0):.2f} s."
    )
    print(
        f"  command start-up (a fresh python importing wan-lora and dagster): {startup:.2f} s, "
        "paid once per command, not in the in-process times above"
    )
    print_machine(load_at_start)
    print_ratios(ours, plain, every_core, startup)


def print_ratios(ours: list, plain: list, every_core: list, startup: float) -> None:
    """Throughput against the one-at-a-time loop, and wall time against the every-core one."""
    ours_wall = median_of(ours, "wall")
    speed_up = median_of(plain, "wall") / ours_wall
    wall = ours_wall / median_of(every_core, "wall")
    with_startup = (ours_wall + startup) / median_of(every_core, "wall")
    cpu = median_of(ours, "cpu") / median_of(plain, "cpu")
    print(
        f"\nthroughput ours / plain one at a time:              {speed_up:.2f}x  "
        f"(goal: at least {GOAL_SPEED_UP:.1f}x)"
    )
    print(
        f"ratio ours/plain {CORES} at a time, wall, in process:    {wall:.2f}x  "
        f"(goal: within {GOAL_RATIO:.2f}x)"
    )
    print(f"ratio ours/plain {CORES} at a time, wall, with start-up: {with_startup:.2f}x")
    print(f"ratio ours/plain, CPU time, in process:              {cpu:.2f}x")


if __name__ == "__main__":
    main()
