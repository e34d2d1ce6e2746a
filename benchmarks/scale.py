"""Bookkeeping at scale: sync, status, a run with nothing to do, bookkeeping per clip per stage,
the `.dagster/` folder, and the `clips` stage's throughput against plain ffmpeg, in one run.

The big project (30,000 clips) is measured where no clip has to be cut: partition sync (first,
unchanged, one caption edited) and `wan-lora status`. The full run (3,000 clips) makes every
per-clip stage, with work chosen cheap (2-frame clips of a 128x96 film, hand captions, the tiny
model at 32x32), so that what is left is bookkeeping: a stage's wall time less its work's; the
run goes on to `training_set` and `dataset_report` (not training).
Half the ranges overlap at random over one film; the other half tile hard links of that film.

By default the run with nothing to do (and `status` with everything made) is measured on the
full run's project and scaled: a command's fixed cost (`wan-lora status` on a project of no
clips: start-up, instance, definitions) once, the rest times 30,000 / its clips.
`--full-run-clips 30000` makes the 30,000-clip project itself (about 14 minutes on 2 idle cores,
the whole script about 17) and measures every figure at that size.
`wan-lora status` and the run with nothing to do are timed as the commands a user types (a new
process, its start-up included); CPU time is the command's own (user + system).

    .venv/bin/python benchmarks/scale.py [--small] [--clips N] [--full-run-clips N]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import clips
from _common import (
    Measured,
    Timers,
    link_or_copy,
    machine_load,
    made_counts,
    measured,
    print_machine,
    print_table,
    run_wan_lora,
    scratch_dir,
    stage_label,
    time_runner,
    use_steady_torch_threads,
)

from wan_lora_dagster.assets import caches as cache_assets
from wan_lora_dagster.assets import dataset as dataset_assets
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project import open_project
from wan_lora_dagster.project_builder import recipe_text
from wan_lora_dagster.resources import FfmpegResource
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.scaffold import init_project

FILM_SECONDS, FILM_SIZE = 60.0, (128, 96)
TILE_MS, TILE_STEP_MS, RANGES_PER_TILED_FILM = 125, 150, 390
PER_CLIP_STAGES = ("clips", "captions", "text_cache", "latent_cache")
# the full run goes on to the manifest and its report, so that a run with nothing to do checks
# everything up to training (training itself is not run)
RUN_STAGES = (*PER_CLIP_STAGES, "training_set", "dataset_report")
TRIGGER = "scalestyle"
RECIPE = recipe_text(
    datasets=[{"name": "tiny", "source": "clips", "resolution": [32, 32], "target_frames": [1]}],
    captions={"captioner": "none", "trigger": TRIGGER},
    training={"model": "tiny"},
)
GOALS = {  # the issue's, at 30,000 clips: (what, limit, unit)
    "sync": ("<= 10 s", 10.0),
    "status": ("<= 10 s", 10.0),
    "no-op run": ("<= 30 s", 30.0),
    "bookkeeping": ("<= 10 ms per clip per stage", 10.0),
    ".dagster": ("< 1 GB", 1000.0),
}


@dataclass(frozen=True)
class Scale:
    bookkeeping_clips: int
    full_run_clips: int
    cuts: clips.Scale


FULL = Scale(30_000, 3_000, clips.Scale(film_seconds=120.0, repeats=1))
SMALL = Scale(3_000, 60, clips.Scale(film_seconds=24.0, repeats=1))


def build_project(directory: Path, film: Path, num_clips: int) -> Path:
    """`num_clips` ranges with a hand caption each: half overlapping, half tiling film links."""
    project = init_project(directory, RECIPE)
    overlapping = _overlapping_ranges(num_clips // 2)
    _add_film(project, film, "over", overlapping)
    tiled = num_clips - len(overlapping)
    for index in range(0, tiled, RANGES_PER_TILED_FILM):
        count = min(RANGES_PER_TILED_FILM, tiled - index)
        starts = [step * TILE_STEP_MS for step in range(count)]
        _add_film(project, film, f"tiles{index:06d}", [(s, s + TILE_MS) for s in starts])
    return project


def _overlapping_ranges(count: int) -> list[tuple[int, int]]:
    rng = random.Random(0)
    ranges: set[tuple[int, int]] = set()
    while len(ranges) < count:
        start = rng.randrange(0, int(FILM_SECONDS * 1000) - 1000)
        ranges.add((start, start + rng.choice((TILE_MS, 250, 500, 1000))))
    return sorted(ranges)


def _add_film(project: Path, film: Path, stem: str, ranges_ms: list[tuple[int, int]]) -> None:
    link_or_copy(film, project / "films" / f"{stem}.mp4")
    lines = "".join(f"{start / 1000:.3f} {end / 1000:.3f}\n" for start, end in ranges_ms)
    (project / "ranges" / f"{stem}.txt").write_text(lines)
    for start, end in ranges_ms:
        caption = project / "captions" / f"{stem}_{start}-{end}.txt"
        caption.write_text(f"{TRIGGER}, shapes moving, {stem} at {start} ms\n")


def folder_megabytes(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def time_command(*args: object) -> Measured:
    """`wan-lora ARGS` as a user runs it: a new process, start-up included; CPU is its own."""
    command = [sys.executable, "-m", "wan_lora_dagster.cli", *map(str, args)]
    with measured() as seconds:
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: a run that left something failed or blocked
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def time_startup(repeats: int = 3) -> Measured:
    """A fresh Python importing what `wan-lora` imports: the median of `repeats`."""
    code = "import wan_lora_dagster.cli, wan_lora_dagster.runner"
    runs = []
    for _ in range(repeats):
        with measured() as seconds:
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        runs.append(seconds)
    return sorted(runs, key=lambda run: run.wall)[len(runs) // 2]


def time_bookkeeping_project(project: Path) -> dict[str, Measured]:
    """Sync three times (first, unchanged, one caption edited) and `wan-lora status`."""
    times = {}
    with measured() as times["runner set-up (instance, definitions)"]:
        runner = ProjectRunner(open_project(project))
    with measured() as times["sync, first (partitions, observations)"]:
        catalog = runner.sync()
    with measured() as times["sync, nothing changed"]:
        runner.sync()
    edited = project / "captions" / f"{catalog.clip_ids[len(catalog.clip_ids) // 2]}.txt"
    edited.write_text(f"{TRIGGER}, edited by hand\n")
    with measured() as times["sync, one caption edited"]:
        runner.sync()
    times["`wan-lora status` (command)"] = time_command("status", "--project", project)
    return times


def time_full_run(project: Path, timers: Timers) -> tuple[Measured, dict, dict[str, Measured]]:
    """Every per-clip stage made; then, as commands, the same run with nothing to do, a whole
    `wan-lora run` with nothing to do, and `wan-lora status`."""
    time_runner(timers)
    label = lambda asset, *args, **kwargs: f"work {asset}"  # noqa: E731
    # clips: ranges one ffmpeg cuts; captions: a batch a captioner call (hand captions: a batch)
    timers.wrap(dataset_assets, "make_grouped", label)
    # a cache step's work: its freshness split, loading the model and encoding
    timers.wrap(cache_assets, "_encode", lambda _context, _project, asset, *a: f"work {asset}")
    selection = ",".join(RUN_STAGES)
    made, summary = run_wan_lora("run", "--project", project, "--select", selection)
    parts = timers.take()
    timers.restore()
    _, again = run_wan_lora("run", "--project", project, "--select", selection)
    if any(made_counts(again).values()):
        raise SystemExit(f"the second run made {made_counts(again)}: it should make nothing")
    commands = {
        "`wan-lora run --select` these stages, nothing to do": time_command(
            "run", "--project", project, "--select", selection
        ),
        "`wan-lora status`, everything made": time_command("status", "--project", project),
    }
    return made, {"summary": summary, "parts": parts}, commands


def bookkeeping_rows(result: dict, num_clips: int) -> list[list[object]]:
    """Per stage: clips made, the stage's and its work's wall and CPU seconds, and the rest
    (bookkeeping) per clip."""
    wall, cpu = result["parts"].wall, result["parts"].cpu
    rows = []
    for asset in PER_CLIP_STAGES:
        stage, work = stage_label(asset), f"work {asset}"
        made = len(result["summary"][asset]["materialized"])
        rows.append(
            [
                asset,
                made,
                wall.get(stage, 0.0),
                wall.get(work, 0.0),
                cpu.get(stage, 0.0),
                cpu.get(work, 0.0),
                1000 * (wall.get(stage, 0.0) - wall.get(work, 0.0)) / num_clips,
                1000 * (cpu.get(stage, 0.0) - cpu.get(work, 0.0)) / num_clips,
            ]
        )
    return rows


def main() -> None:
    scale = parse_scale()
    load_at_start = machine_load()
    use_steady_torch_threads()
    timers = Timers()
    with scratch_dir("scale") as scratch:
        film = make_synthetic_film(
            scratch / "film.mp4", duration=FILM_SECONDS, size=FILM_SIZE, num_scenes=4, seed=1
        )
        big = build_project(scratch / "big", film, scale.bookkeeping_clips)
        bookkeeping = time_bookkeeping_project(big)
        big_megabytes = folder_megabytes(big / ".dagster")
        full = build_project(scratch / "full", film, scale.full_run_clips)
        made, result, commands = time_full_run(full, timers)
        fixed = time_command("status", "--project", init_project(scratch / "empty", RECIPE))
        full_megabytes = folder_megabytes(full / ".dagster")
        cut_film = clips.make_long_film(
            scratch / "cut-film.mp4", scale.cuts.film_seconds, clips.FILM_SIZE, 15.0
        )
        cut_sides = time_cut_sides(cut_film, clips.clip_ranges(scale.cuts), scratch)
    startup = time_startup()
    report(scale, bookkeeping, big_megabytes, made, result, commands, full_megabytes, startup)
    print(f"\nclips stage vs plain ffmpeg ({scale.cuts.num_ranges} cuts of 2-2.5 s, 640x360):")
    clips.print_ratios(cut_sides, startup.wall)
    print(
        f"  a command's fixed cost (`wan-lora status`, no clips): {fixed.wall:.2f} s wall, "
        f"{fixed.cpu:.2f} s CPU"
    )
    print_goals(scale, bookkeeping, big_megabytes, result, commands, full_megabytes, fixed)
    print_machine(load_at_start)


def parse_scale() -> Scale:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    parser.add_argument("--clips", type=int, help="clips of the sync and status project")
    parser.add_argument("--full-run-clips", type=int, help="clips of the full run")
    args = parser.parse_args()
    scale = SMALL if args.small else FULL
    return Scale(
        args.clips or scale.bookkeeping_clips,
        args.full_run_clips or scale.full_run_clips,
        scale.cuts,
    )


def time_cut_sides(film: Path, ranges: list, scratch: Path) -> dict[str, list[Measured]]:
    """Ours and clips.py's plain sides (the user's ffmpeg loop, our argv one and every core at a
    time, ffmpeg's own threads every core at a time): the same cuts, one run each."""
    ours_settings = FfmpegResource().cut_settings()
    user_settings = replace(ours_settings, threads=None)
    plain_sides = {
        clips.USER_LOOP: (user_settings, 1),
        clips.OUR_ARGV_LOOP: (ours_settings, 1),
        clips.OUR_ARGV_CORES: (ours_settings, clips.CORES),
        clips.USER_CORES: (user_settings, clips.CORES),
    }
    clips.time_ours(film, ranges[:1], scratch / "cut-warm-up")
    sides = {clips.OURS: [clips.time_ours(film, ranges, scratch / "cut-ours")[0]]}
    for index, (name, (settings, at_a_time)) in enumerate(plain_sides.items()):
        directory = scratch / f"cut-plain{index}"
        sides[name] = [clips.time_plain(film, ranges, directory, settings, at_a_time)]
    return sides


def report(scale, bookkeeping, big_megabytes, made, result, commands, full_megabytes, startup):
    num = scale.bookkeeping_clips
    print(
        f"scale: {num} clips for sync and status, {scale.full_run_clips} for the full run; "
        f"{os.cpu_count()} cores"
    )
    print_table(
        f"{num} clips, nothing made (goals: sync {GOALS['sync'][0]}, status {GOALS['status'][0]})",
        ["what", "wall s", "CPU s"],
        [[name, times.wall, times.cpu] for name, times in bookkeeping.items()],
    )
    print(
        f"  `.dagster/` after these: {big_megabytes:.1f} MB; command start-up (imports), in the "
        f"command's times, not in the others: {startup.wall:.2f} s wall, {startup.cpu:.2f} s CPU"
    )
    full = scale.full_run_clips
    print_table(
        f"{full} clips, every per-clip stage made (bookkeeping goal: {GOALS['bookkeeping'][0]})",
        [
            "stage",
            "made",
            "stage s",
            "work s",
            "stage CPU s",
            "work CPU s",
            "bookkeeping ms/clip",
            "CPU ms/clip",
        ],
        bookkeeping_rows(result, full),
    )
    print(f"  whole run: {made.wall:.1f} s wall, {made.cpu:.1f} s CPU")
    print_table(
        f"{full} clips made, commands with nothing to do",
        ["command", "wall s", "CPU s"],
        [[name, times.wall, times.cpu] for name, times in commands.items()],
    )
    print(f"  `.dagster/` after these: {full_megabytes:.1f} MB")


def print_goals(scale, bookkeeping, big_megabytes, result, commands, full_megabytes, fixed):
    """Every figure of the issue at 30,000 clips beside its goal: measured at 30,000 where the
    project needs nothing made, else measured at the full run's size and scaled up."""
    factor = scale.bookkeeping_clips / scale.full_run_clips
    noop, status_made = (_scaled_command(times, fixed, factor) for times in commands.values())
    worst = max(bookkeeping_rows(result, scale.full_run_clips), key=lambda row: row[6])
    # a command's fixed cost is not scaled
    scaled = "measured" if factor == 1 else f"x{factor:g} of {scale.full_run_clips}"
    rows = [
        ["sync, first", "", bookkeeping["sync, first (partitions, observations)"], "sync"],
        ["sync, nothing changed", "", bookkeeping["sync, nothing changed"], "sync"],
        ["sync, one caption edited", "", bookkeeping["sync, one caption edited"], "sync"],
        [
            "`wan-lora status`, nothing made",
            "",
            bookkeeping["`wan-lora status` (command)"],
            "status",
        ],
        ["`wan-lora status`, all made", scaled, status_made, "status"],
        ["`wan-lora run`, nothing to do", scaled, noop, "no-op run"],
        [f"bookkeeping, worst stage ({worst[0]})", "ms/clip", _times(worst[6:8]), "bookkeeping"],
        ["`.dagster/`, synced", "MB", _times((big_megabytes, None)), ".dagster"],
        [
            "`.dagster/`, all made",
            f"MB, {scaled}",
            _times((full_megabytes, None), factor),
            ".dagster",
        ],
    ]
    print_table(
        f"The issue's figures at {scale.bookkeeping_clips} clips",
        ["figure", "how", "wall", "CPU", "goal", "met (wall)", "met (CPU)"],
        [
            [
                name,
                how,
                times.wall,
                "" if times.cpu is None else times.cpu,
                GOALS[goal][0],
                _met(times.wall, GOALS[goal][1]),
                _met(times.cpu, GOALS[goal][1]),
            ]
            for name, how, times, goal in rows
        ],
    )
    print(
        "  met (CPU): for work on one core, whether the goal would be met with the machine to "
        "itself (a busy machine stretches wall time, hardly CPU time); `status` with everything "
        "made checks its items on every core, so its CPU time is more than its wall time"
    )


def _met(value: float | None, limit: float) -> str:
    return "" if value is None else "yes" if value <= limit else "NO"


def _scaled_command(times: Measured, fixed: Measured, factor: float) -> Measured:
    """A command's times at `factor` times the clips: its fixed cost once, the rest scaled."""
    return Measured(
        fixed.wall + factor * max(0.0, times.wall - fixed.wall),
        fixed.cpu + factor * max(0.0, times.cpu - fixed.cpu),
    )


def _times(values, factor: float = 1.0) -> Measured:
    wall, cpu = (values.wall, values.cpu) if isinstance(values, Measured) else values
    return Measured(wall * factor, None if cpu is None else cpu * factor)


if __name__ == "__main__":
    main()
