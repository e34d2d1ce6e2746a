"""Only what changed is recomputed: `wan-lora run --select +training_set` on a many-clip project,
built from scratch vs. run again after editing ONE caption file.

Encoder work is counted two ways: the jobs given to DiffusersEngine.encode_texts / encode_latents
(wrapped in this process), and the cache files under out/cache/ written or rewritten.

    .venv/bin/python benchmarks/incremental.py [--small]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _common import (
    RUNNER_SETUP,
    RUNNER_SYNC,
    TORCH_THREADS,
    Measured,
    Parts,
    Timers,
    command_startup_seconds,
    dagster_run_label,
    machine_load,
    made_counts,
    median,
    median_index,
    parse_args,
    print_machine,
    print_table,
    run_wan_lora,
    scratch_dir,
    stage_label,
    time_runner,
    use_steady_torch_threads,
)

from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project_builder import recipe_text
from wan_lora_dagster.scaffold import init_project

CLIP_SECONDS = 0.5  # one range every half second, each 0.4 s long (6 frames at 16 fps)
FILMS = ("a", "b")
RECIPE = recipe_text(
    datasets=[{"name": "small", "source": "clips", "resolution": [32, 32], "target_frames": [5]}],
    captions={
        "captioner": "blip2",
        "model": "tiny",
        "frames_per_clip": 1,
        "max_new_tokens": 6,
        "trigger": "benchstyle",
    },
    training={"model": "tiny", "network_dim": 2, "network_alpha": 2, "max_train_epochs": 1},
)
SELECTION = "+training_set"
STAGES = ("clips", "captions", "text_cache", "latent_cache", "training_set")
TEXT_JOBS, LATENT_JOBS = "text encodings", "latent encodings"
GOAL_FRACTION = 20  # incremental below 1/20 of the full build


@dataclass(frozen=True)
class Scale:
    num_clips: int
    repeats: int


DEFAULT = Scale(num_clips=240, repeats=3)
SMALL = Scale(num_clips=12, repeats=1)


@dataclass
class RunResult:
    times: Measured
    parts: Parts
    jobs: dict[str, int]
    made: dict[str, int]
    cache_files: Counter


def build_sources(directory: Path, num_clips: int) -> Path:
    """Two 64x48 synthetic films with num_clips / 2 short ranges each; nothing derived yet."""
    project = init_project(directory, RECIPE)
    per_film = num_clips // len(FILMS)
    for film in FILMS:
        make_synthetic_film(
            project / "films" / f"{film}.mp4",
            duration=per_film * CLIP_SECONDS + 1,
            size=(64, 48),
            num_scenes=1,
            seed=ord(film),
        )
        lines = (
            f"{index * CLIP_SECONDS:.3f} +{CLIP_SECONDS - 0.1:.3f}\n" for index in range(per_film)
        )
        (project / "ranges" / f"{film}.txt").write_text("".join(lines))
    return project


def cache_mtimes(project: Path) -> dict[Path, int]:
    return {
        path: path.stat().st_mtime_ns
        for path in (project / "out" / "cache").rglob("*")
        if path.is_file()
    }


def written_cache_files(before: dict[Path, int], after: dict[Path, int]) -> Counter:
    """Cache files new or rewritten, by cache folder: `text` or a dataset section's name."""
    return Counter(path.parent.name for path, mtime in after.items() if before.get(path) != mtime)


def time_run(project: Path, timers: Timers) -> RunResult:
    before = cache_mtimes(project)
    times, summary = run_wan_lora("run", "--project", project, "--select", SELECTION)
    parts = timers.take()
    jobs = {name: parts.units.get(name, 0) for name in (TEXT_JOBS, LATENT_JOBS)}
    return RunResult(
        times,
        parts,
        jobs,
        made_counts(summary),
        written_cache_files(before, cache_mtimes(project)),
    )


def count_encoder_jobs(timers: Timers) -> None:
    def jobs(_engine, jobs, *_args, **_kwargs) -> int:
        return len(jobs)

    timers.wrap(DiffusersEngine, "encode_texts", TEXT_JOBS, units=jobs)
    timers.wrap(DiffusersEngine, "encode_latents", LATENT_JOBS, units=jobs)
    time_runner(timers)


def edit_one_caption(project: Path, repeat: int) -> str:
    """Rewrite one caption by hand (a different clip each time); returns its clip id."""
    captions = sorted((project / "captions").glob("*.txt"))
    caption = captions[(7 + 31 * repeat) % len(captions)]
    caption.write_text(f"benchstyle, a hand-written caption, edit {repeat}\n")
    return caption.stem


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    load_at_start = machine_load()
    scale = SMALL if args.small else DEFAULT
    use_steady_torch_threads()
    timers = Timers()
    with scratch_dir("incremental") as scratch:
        project = build_sources(scratch / "project", scale.num_clips)
        import wan_lora_dagster.captioning.blip2
        import wan_lora_dagster.runner  # noqa: F401

        count_encoder_jobs(timers)
        full = time_run(project, timers)
        incremental, edited = [], []
        for repeat in range(scale.repeats):
            edited.append(edit_one_caption(project, repeat))
            incremental.append(time_run(project, timers))
        timers.restore()
    startup = command_startup_seconds(repeats=scale.repeats)
    report(scale, full, incremental, edited, startup, load_at_start)


def report(
    scale: Scale,
    full: RunResult,
    incremental: list[RunResult],
    edited: list[str],
    startup: float,
    load_at_start: str,
) -> None:
    print(
        f"incremental: {scale.num_clips} clips ({len(FILMS)} synthetic 64x48 films, 0.4 s ranges), "
        f"blip2 'tiny' captions, tiny Wan encoders, one 32x32 section, torch threads: "
        f"{TORCH_THREADS}; "
        f"`wan-lora run --select {SELECTION}`; the edit: one caption file rewritten by hand "
        f"({scale.repeats} edit(s), a different clip each)"
    )
    runs = [f"edit {index + 1}" for index in range(len(incremental))]
    rows = [
        ["wall time (s)", full.times.wall, *(run.times.wall for run in incremental)],
        ["CPU time (s)", full.times.cpu, *(run.times.cpu for run in incremental)],
        [TEXT_JOBS, full.jobs[TEXT_JOBS], *(run.jobs[TEXT_JOBS] for run in incremental)],
        [LATENT_JOBS, full.jobs[LATENT_JOBS], *(run.jobs[LATENT_JOBS] for run in incremental)],
    ]
    for folder in sorted(full.cache_files):
        label = f"files written in out/cache/{folder}/"
        rows.append(
            [label, full.cache_files[folder], *(run.cache_files[folder] for run in incremental)]
        )
    for stage in STAGES:
        rows.append(
            [
                f"{stage} partitions made",
                full.made.get(stage, 0),
                *(run.made.get(stage, 0) for run in incremental),
            ]
        )
    print_table("Full build vs. one caption edited", ["", "full", *runs], rows)
    print("  edited clips: " + ", ".join(edited))

    typical = incremental[median_index([run.times.wall for run in incremental])]
    print_table(
        "Where the time goes (s)",
        ["part", "full", "incremental (median run)"],
        [[name, full_s, typical_s] for name, full_s, typical_s in part_rows(full, typical)],
    )
    print(
        f"\n  command start-up (a fresh python importing wan-lora and dagster): {startup:.2f} s, "
        "paid once per command, not in the in-process times above"
    )
    print_machine(load_at_start)
    time_incremental = median([run.times.wall for run in incremental])
    ratio = time_incremental / full.times.wall
    with_startup = (time_incremental + startup) / (full.times.wall + startup)
    cpu_ratio = median([run.times.cpu for run in incremental]) / full.times.cpu
    texts = max(run.jobs[TEXT_JOBS] for run in incremental)
    latents = max(run.jobs[LATENT_JOBS] for run in incremental)
    goal = f"(goal: below 1/{GOAL_FRACTION})"
    print(f"\ntime full: {full.times.wall:.2f} s   incremental (median): {time_incremental:.2f} s")
    print(f"time ratio incremental/full, in process:    {ratio:.4f} = 1/{1 / ratio:.1f}  {goal}")
    print(f"time ratio incremental/full, CPU time:      {cpu_ratio:.4f} = 1/{1 / cpu_ratio:.1f}")
    print(
        f"time ratio incremental/full, with start-up: {with_startup:.4f} = 1/{1 / with_startup:.1f}"
    )
    print(
        f"text encodings full vs incremental: {full.jobs[TEXT_JOBS]} vs {texts}  "
        f"(goal: {scale.num_clips} vs 1)"
    )
    print(f"latent encodings incremental: {latents}  (goal: 0; full: {full.jobs[LATENT_JOBS]})")


def part_rows(full: RunResult, typical: RunResult) -> list[tuple[str, float, float]]:
    """Exclusive seconds: runner set-up and sync, each stage's freshness checks, its Dagster run
    (less the encoders) and its encoders; the rows add up to each run's total."""

    def rows_of(run: RunResult) -> dict[str, float]:
        get = run.parts.wall.get
        rows = {
            "runner set-up (instance, definitions)": get(RUNNER_SETUP, 0.0),
            "runner sync (partitions, observations)": get(RUNNER_SYNC, 0.0),
        }
        for stage in STAGES:
            stage_total, dagster = get(stage_label(stage), 0.0), get(dagster_run_label(stage), 0.0)
            encoder = {"text_cache": TEXT_JOBS, "latent_cache": LATENT_JOBS}.get(stage)
            encoding = get(encoder, 0.0) if encoder else 0.0
            rows[f"{stage}: freshness checks (runner)"] = stage_total - dagster
            rows[f"{stage}: Dagster run" + (" less encoding" if encoder else "")] = (
                dagster - encoding
            )
            if encoder:
                rows[f"{stage}: {encoder}"] = encoding
        rows["CLI rest (project, summary)"] = run.times.wall - sum(rows.values())
        return rows

    full_rows, typical_rows = rows_of(full), rows_of(typical)
    table = [(name, full_rows[name], typical_rows[name]) for name in full_rows]
    table.append(("total", full.times.wall, typical.times.wall))
    return table


if __name__ == "__main__":
    main()
