"""Training steps per second of the tiny model: the diffusers engine called directly vs. the
same training through the Dagster step (`wan-lora run --select lora_checkpoints`).

Both sides run with one torch thread (see `use_steady_torch_threads`), train from the same
prepared caches (the demo's film, ranges and recipe, with more epochs and hand-written captions),
build a fresh engine (so both load the model) and save the same checkpoints. The Dagster side
deletes out/checkpoints and the lora_checkpoints records first, which forces a retrain.

    .venv/bin/python benchmarks/engine_cpu.py [--small]
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from _common import (
    TORCH_THREADS,
    Measured,
    Parts,
    Timers,
    alternate,
    command_startup_seconds,
    machine_load,
    made_counts,
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
    use_steady_torch_threads,
)

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.engines.diffusers import engine as diffusers_engine
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.status import Expectations
from wan_lora_dagster.project import open_project
from wan_lora_dagster.project_builder import demo_recipe, recipe_text
from wan_lora_dagster.scaffold import DEMO_RANGES, init_project

ENGINE_TRAIN = "engine.train"
TRAIN_LOOP = "train_lora"
MODEL_LOAD = "engine + model load (tiny)"
STEPS = "training loop less callbacks (steps, saves)"
PROGRESS = "progress callback (bar; run-log line each 10 %)"
CHECKPOINTS = "checkpoint callback (record, PNG, log line)"
DIRECT = "direct: DiffusersEngine.train"
THROUGH_DAGSTER = "dagster: wan-lora run --select lora_checkpoints"


@dataclass(frozen=True)
class Scale:
    epochs: int
    repeats: int


DEFAULT = Scale(epochs=16, repeats=3)
SMALL = Scale(epochs=2, repeats=1)


def recipe(epochs: int) -> str:
    """The demo's recipe, training `epochs` epochs (saving every second one), with captions
    written by this script: the captioner is no part of what is measured."""
    captions = {"captioner": "none", "model": None}
    return recipe_text(**demo_recipe(training={"max_train_epochs": epochs}, captions=captions))


def build_project(directory: Path, scale: Scale) -> Path:
    """The demo project with its training set and dataset report made, nothing trained yet."""
    project = init_project(directory, recipe(scale.epochs))
    make_synthetic_film(project / "films" / "shapes.mp4", duration=24.0, num_scenes=4)
    (project / "ranges" / "shapes.txt").write_text(DEMO_RANGES)
    for index, clip in enumerate(load_catalog(open_project(project)).clip_ids):
        (project / "captions" / f"{clip}.txt").write_text(f"demostyle, shapes moving, {index}\n")
    run_wan_lora("run", "--project", project, "--select", "+dataset_report")
    return project


def train_request(root: Path, output_dir: Path) -> TrainRequest:
    """What the Dagster step asks the engine for: the same manifest, settings and sections."""
    project = open_project(root)
    manifest = Expectations(load_catalog(project)).manifest
    return TrainRequest(
        manifest=manifest,
        settings=project.recipe.training,
        sections=project.recipe.datasets,
        output_dir=output_dir,
        output_name="direct",
    )


@dataclass
class TrainingRun:
    times: Measured
    steps: int
    parts: Parts


def time_direct(root: Path, request: TrainRequest) -> tuple[Measured, int]:
    """(times, steps) of a fresh engine (it loads the model) training the request."""
    project = open_project(root)
    with measured() as times:
        engine = DiffusersEngine(project.recipe.training, project.out("models"))
        saved = engine.train(request, progress=lambda _report: None, on_checkpoint=lambda _: None)
    return times, saved[-1].step


def warm_up(root: Path, output_dir: Path) -> None:
    request = train_request(root, output_dir)
    settings = request.settings.model_copy(update={"max_train_steps": 2})
    time_direct(root, replace(request, settings=settings))


def time_dagster(root: Path) -> tuple[Measured, int]:
    """(times, steps) of `wan-lora run --select lora_checkpoints` after a forced reset."""
    shutil.rmtree(root / "out" / "records" / "lora_checkpoints", ignore_errors=True)
    shutil.rmtree(root / "out" / "checkpoints", ignore_errors=True)
    times, summary = run_wan_lora("run", "--project", root, "--select", "lora_checkpoints")
    if not made_counts(summary).get("lora_checkpoints"):
        raise SystemExit(f"the Dagster step trained nothing: {summary}")
    records = load_catalog(open_project(root)).records
    steps = max(
        records.read("lora_checkpoints", key).step
        for key in summary["lora_checkpoints"]["materialized"]
    )
    return times, steps


def time_training_parts(timers: Timers) -> None:
    """Time the engine, its training loop, and the callbacks each side hands it."""
    timers.wrap(DiffusersEngine, "train", ENGINE_TRAIN)
    train_lora = diffusers_engine.train_lora

    def train_lora_timing_callbacks(models, request, progress, on_checkpoint):
        progress = timers.timed(progress, PROGRESS)
        return train_lora(models, request, progress, timers.timed(on_checkpoint, CHECKPOINTS))

    timers.patch(diffusers_engine, "train_lora", train_lora_timing_callbacks)
    timers.wrap(diffusers_engine, "train_lora", TRAIN_LOOP)
    time_runner(timers)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    load_at_start = machine_load()
    scale = SMALL if args.small else DEFAULT
    use_steady_torch_threads()
    timers = Timers()
    direct: list[TrainingRun] = []
    dagster: list[TrainingRun] = []
    with scratch_dir("engine") as scratch:
        root = build_project(scratch / "project", scale)
        time_training_parts(timers)
        warm_up(root, scratch / "warm-up")  # first-use imports and allocations, on neither side
        timers.take()

        def run_direct(repeat: int) -> None:
            request = train_request(root, scratch / f"direct-{repeat}")
            direct.append(TrainingRun(*time_direct(root, request), timers.take()))

        def run_dagster(_repeat: int) -> None:
            dagster.append(TrainingRun(*time_dagster(root), timers.take()))

        alternate(scale.repeats, run_direct, run_dagster)
        timers.restore()
    startup = command_startup_seconds(repeats=scale.repeats)
    report(scale, direct, dagster, startup, load_at_start)


def report(
    scale: Scale,
    direct: list[TrainingRun],
    dagster: list[TrainingRun],
    startup: float,
    load_at_start: str,
) -> None:
    steps = direct[0].steps
    if any(run.steps != steps for run in direct + dagster):
        raise SystemExit(f"the sides trained different step counts: {direct} {dagster}")
    print(
        f"engine_cpu: tiny Wan model, demo project (4 training clips x 4 windows of 9 frames at "
        f"64x48), {scale.epochs} epoch(s) = {steps} steps, checkpoints every 2 epochs; "
        f"torch threads: {TORCH_THREADS}; "
        f"{scale.repeats} run(s) per side, alternating"
    )
    sides = {DIRECT: direct, THROUGH_DAGSTER: dagster}
    times = {name: [run.times for run in runs] for name, runs in sides.items()}
    print_side_times(times, per_median=("steps/s", lambda seconds: steps / seconds))
    typical = {
        name: runs[median_index([run.times.wall for run in runs])] for name, runs in sides.items()
    }
    print_table(
        "Where the time goes (s; the median-wall run of each side)",
        ["part", "direct wall", "direct CPU", "dagster wall", "dagster CPU"],
        breakdown_table(typical[DIRECT], typical[THROUGH_DAGSTER], steps),
    )
    print(
        f"\n  command start-up (a fresh python importing wan-lora and dagster): {startup:.2f} s, "
        "paid once per command, not in the in-process times above"
    )
    print_machine(load_at_start)
    direct_wall, dagster_wall = (
        median_of(times[DIRECT], "wall"),
        median_of(times[THROUGH_DAGSTER], "wall"),
    )
    cpu_ratio = median_of(times[THROUGH_DAGSTER], "cpu") / median_of(times[DIRECT], "cpu")
    print(
        f"\nsteps/s direct: {steps / direct_wall:.2f}   "
        f"steps/s through Dagster: {steps / dagster_wall:.2f}  (wall time)"
    )
    wall_ratio = dagster_wall / direct_wall
    print(f"overhead ratio dagster/direct, wall time, in process:    {wall_ratio:.2f}x")
    print(
        "overhead ratio dagster/direct, wall time, with start-up: "
        f"{(dagster_wall + startup) / direct_wall:.2f}x"
    )
    print(f"overhead ratio dagster/direct, CPU time, in process:     {cpu_ratio:.2f}x")


def part_rows(run: TrainingRun, kind: str, through_dagster: bool) -> dict[str, float]:
    """Exclusive seconds (`kind`: wall or cpu) of one run's parts, adding up to its total."""
    parts = getattr(run.parts, kind)
    total = getattr(run.times, kind)
    engine, loop = parts.get(ENGINE_TRAIN, 0.0), parts.get(TRAIN_LOOP, 0.0)
    callbacks = {name: parts.get(name, 0.0) for name in (PROGRESS, CHECKPOINTS)}
    rows = {MODEL_LOAD: engine - loop, STEPS: loop - sum(callbacks.values()), **callbacks}
    if through_dagster:
        rows.update(runner_rows(total, parts, "lora_checkpoints", step_work=engine))
    else:
        rows["rest (the call itself)"] = total - engine
    return rows


def breakdown_table(direct: TrainingRun, dagster: TrainingRun, steps: int) -> list[list[object]]:
    sides = [(direct, "wall"), (direct, "cpu"), (dagster, "wall"), (dagster, "cpu")]
    columns = [part_rows(run, kind, through_dagster=run is dagster) for run, kind in sides]
    names = list(dict.fromkeys(name for column in columns for name in column))
    table = [[name, *(column.get(name, "-") for column in columns)] for name in names]
    totals = [getattr(run.times, kind) for run, kind in sides]
    model_work = [column[MODEL_LOAD] + column[STEPS] for column in columns]
    table.append(["total", *totals])
    table.append(
        [
            "of which not model work (Dagster, runner, callbacks)",
            *(total - work for total, work in zip(totals, model_work, strict=True)),
        ]
    )
    table.append(["steps/s of the training loop alone", *(steps / c[STEPS] for c in columns)])
    return table


if __name__ == "__main__":
    main()
