"""Bookkeeping at scale: sync, status, a run with nothing to do, bookkeeping per clip per stage,
the `.dagster/` folder, and the `clips` stage's throughput against plain ffmpeg, in one run.

The big project (30,000 clips) is measured where no clip has to be cut: partition sync (first,
unchanged, one caption edited) and `wan-lora status`. The full run (3,000 clips) makes every
per-clip stage, with work chosen cheap (2-frame clips of a 128x96 film, hand captions, the tiny
model at 32x32), so that what is left is bookkeeping: a stage's wall time less its work's.
Half the ranges overlap at random over one film; the other half tile hard links of that film.

    .venv/bin/python benchmarks/scale.py [--small] [--clips N] [--full-run-clips N]
"""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass
from pathlib import Path

import clips
from _common import (
    Measured,
    Timers,
    command_startup_seconds,
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
from wan_lora_dagster.runner import ProjectRunner
from wan_lora_dagster.scaffold import init_project

FILM_SECONDS, FILM_SIZE = 60.0, (128, 96)
TILE_MS, TILE_STEP_MS, RANGES_PER_TILED_FILM = 125, 150, 390
PER_CLIP_STAGES = ("clips", "captions", "text_cache", "latent_cache")
TRIGGER = "scalestyle"
RECIPE = f"""\
[[datasets]]
name = "tiny"
source = "clips"
resolution = [32, 32]
target_frames = [1]

[captions]
captioner = "none"
trigger = "{TRIGGER}"

[training]
model = "tiny"
"""
GOALS = {
    "sync": "<= 10 s",
    "status": "<= 10 s",
    "no-op run": "<= 30 s",
    "bookkeeping": "<= 10 ms per clip per stage",
    ".dagster": "< 1 GB",
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
    times["wan-lora status (in process)"], _ = run_wan_lora("status", "--project", project)
    return times


def time_full_run(project: Path, timers: Timers) -> tuple[Measured, dict, Measured]:
    """Every per-clip stage made, then the same run again with nothing to do."""
    time_runner(timers)
    label = lambda asset, *args, **kwargs: f"work {asset}"  # noqa: E731
    timers.wrap(dataset_assets, "make_each", label)
    # a cache step's work: its freshness split, loading the model and encoding
    timers.wrap(cache_assets, "_encode", lambda _context, _project, asset, *a: f"work {asset}")
    selection = ",".join(PER_CLIP_STAGES)
    made, summary = run_wan_lora("run", "--project", project, "--select", selection)
    parts = timers.take().wall
    timers.restore()
    nothing, again = run_wan_lora("run", "--project", project, "--select", selection)
    if any(made_counts(again).values()):
        raise SystemExit(f"the second run made {made_counts(again)}: it should make nothing")
    return made, {"summary": summary, "parts": parts}, nothing


def bookkeeping_rows(result: dict, num_clips: int) -> list[list[object]]:
    rows = []
    for asset in PER_CLIP_STAGES:
        stage = result["parts"].get(stage_label(asset), 0.0)
        work = result["parts"].get(f"work {asset}", 0.0)
        made = len(result["summary"][asset]["materialized"])
        rows.append([asset, made, stage, work, 1000 * (stage - work) / num_clips])
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
        made, result, nothing = time_full_run(full, timers)
        full_megabytes = folder_megabytes(full / ".dagster")
        cut_film = clips.make_long_film(
            scratch / "cut-film.mp4", scale.cuts.film_seconds, clips.FILM_SIZE, 15.0
        )
        cut_sides = time_cut_sides(cut_film, clips.clip_ranges(scale.cuts), scratch)
    startup = command_startup_seconds(repeats=3)
    report(scale, bookkeeping, big_megabytes, made, result, nothing, full_megabytes, startup)
    print(f"\nclips stage vs plain ffmpeg ({scale.cuts.num_ranges} cuts of 2-2.5 s, 640x360):")
    clips.print_ratios(*cut_sides, startup)
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


def time_cut_sides(film: Path, ranges: list, scratch: Path) -> tuple[list, list, list]:
    """Ours, plain one at a time, plain on every core: the same cuts, one run each."""
    clips.time_ours(film, ranges[:1], scratch / "cut-warm-up")
    ours = [clips.time_ours(film, ranges, scratch / "cut-ours")]
    plain = [clips.time_plain(film, ranges, scratch / "cut-plain")]
    every_core = [clips.time_plain(film, ranges, scratch / "cut-cores", clips.CORES)]
    return ours, plain, every_core


def report(scale, bookkeeping, big_megabytes, made, result, nothing, full_megabytes, startup):
    num = scale.bookkeeping_clips
    print(
        f"scale: {num} clips for sync and status, {scale.full_run_clips} for the full run; "
        f"{os.cpu_count()} cores"
    )
    print_table(
        f"{num} clips, nothing made (goals: sync {GOALS['sync']}, status {GOALS['status']})",
        ["what", "wall s", "CPU s"],
        [[name, times.wall, times.cpu] for name, times in bookkeeping.items()],
    )
    print(
        f"  `.dagster/` after these: {big_megabytes:.1f} MB; command start-up (imports), paid "
        f"once per command and not above: {startup:.2f} s"
    )
    full = scale.full_run_clips
    print_table(
        f"{full} clips, every per-clip stage made (bookkeeping goal: {GOALS['bookkeeping']})",
        ["stage", "made", "stage s", "work s", "bookkeeping ms/clip"],
        bookkeeping_rows(result, full),
    )
    print(f"  whole run: {made.wall:.1f} s wall, {made.cpu:.1f} s CPU")
    print(
        f"  the same run again, nothing to do: {nothing.wall:.1f} s "
        f"(goal {GOALS['no-op run']}; {nothing.wall + startup:.1f} s with start-up)"
    )
    print(f"  `.dagster/` after both runs: {full_megabytes:.1f} MB (goal {GOALS['.dagster']})")


if __name__ == "__main__":
    main()
