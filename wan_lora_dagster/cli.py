"""The `wan-lora` command: the same graph and the same Dagster instance as the web UI."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tqdm import tqdm

from wan_lora_dagster import progress
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.problems import ProblemsError
from wan_lora_dagster.project import CONFIG_NAME, find_project, open_project
from wan_lora_dagster.scaffold import create_demo_project, init_project
from wan_lora_dagster.starter_recipes import SEED_PROJECTS, seed_recipe, task_recipe
from wan_lora_dagster.tasks import TASK_NAMES

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.evaluation import BestRecord, EvalRecord

INTERRUPTED_EXIT = 130  # the shell's code for a command ended by Ctrl-C


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "project", False) is None:
            args.project = find_project(Path.cwd())
        return args.handler(args)
    except ProblemsError as error:  # every problem of the project, not only the first
        print(error.problems.report(), file=sys.stderr)
        return 2
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wan-lora", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create a project folder with a commented recipe")
    init.add_argument("directory", type=Path)
    starting_point = init.add_mutually_exclusive_group()
    starting_point.add_argument("--task", choices=TASK_NAMES, help="a recipe for this Wan task")
    starting_point.add_argument(
        "--like",
        choices=sorted(SEED_PROJECTS),
        help="the settings of an example project: "
        + "; ".join(f"{name}: {what}" for name, what in SEED_PROJECTS.items()),
    )
    init.set_defaults(handler=_init)

    demo = commands.add_parser("demo", help="create the demo project and run the whole graph")
    demo.add_argument("directory", type=Path, nargs="?", default=Path("demo"))
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="materialize everything missing or unsynced")
    _project_arguments(run)
    run.add_argument("--select", help="asset names, comma separated; +name: with upstream")
    run.set_defaults(handler=_run)

    status = commands.add_parser("status", help="fresh, unsynced, missing, failed per asset")
    _project_arguments(status)
    status.set_defaults(handler=_status)

    lineage = commands.add_parser(
        "lineage", help="the captions that fed a checkpoint, or a clip's (or still's) checkpoints"
    )
    _project_arguments(lineage)
    lineage.add_argument("checkpoint", nargs="?", help="a checkpoint partition key or a LoRA file")
    lineage.add_argument("--clip", help="list every checkpoint this clip (or still) fed")
    lineage.set_defaults(handler=_lineage)

    train = commands.add_parser("train", help="train on the current training set")
    _project_argument(train)
    train.add_argument(
        "--dry-run", action="store_true", help="print musubi-tuner's commands, run nothing"
    )
    train.set_defaults(handler=_train)

    retrain = commands.add_parser(
        "retrain", help="train a damaged or deleted checkpoint again (the damaged file is kept)"
    )
    _project_argument(retrain)
    retrain.add_argument(
        "checkpoint", nargs="+", help="checkpoint partition keys, as the error or status names them"
    )
    retrain.set_defaults(handler=_retrain)

    ui = commands.add_parser(
        "ui", help="the Dagster web UI on this project's instance, and the studio beside it"
    )
    _project_argument(ui)
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--studio-port", type=int, default=3001, help="the studio's (default 3001)")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: this machine only)"
    )
    ui.set_defaults(handler=_ui)

    worker = commands.add_parser(
        "worker", help="a Celery worker of the project's team deployment (see the README)"
    )
    worker.add_argument("--project", type=Path, required=True, help="the project folder")
    worker.add_argument(
        "--queue", required=True, help="cpu, gpu, or cpu,gpu: the work this machine takes"
    )
    worker.add_argument("--name", help="the worker's name (default: QUEUE-random)")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="batches at once (default 1: a batch uses every core or GPU of the machine itself)",
    )
    worker.set_defaults(handler=_worker)
    return parser


def _project_arguments(command: argparse.ArgumentParser) -> None:
    _project_argument(command)
    command.add_argument("--json", action="store_true", help="print JSON on stdout")


def _project_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--project",
        type=Path,
        help=f"the project folder (default: the nearest folder at or above the current one "
        f"that holds a {CONFIG_NAME})",
    )


def _init(args: argparse.Namespace) -> int:
    recipe = seed_recipe(args.like) if args.like else args.task and task_recipe(args.task)
    init_project(args.directory, recipe)
    print(
        f"Created {args.directory}: edit {args.directory / 'wan_lora.toml'}, put films in films/ "
        f"and one ranges/<film>.txt per film, then `wan-lora run --project {args.directory}`."
    )
    return 0


def _runner(directory: Path):
    from wan_lora_dagster.runner import ProjectRunner  # dagster imports take seconds

    return ProjectRunner(open_project(directory))


def _run(args: argparse.Namespace) -> int:
    runner = _runner(args.project)
    with _progress_bars():
        summary = runner.run(args.select)
    table = {asset: asdict(stage) for asset, stage in summary.items()}
    problems = _problems(runner)
    if args.json:
        print(json.dumps(table, indent=1))
    else:
        _print_run_summary(table)
    _print_problems(problems, to_stderr=args.json)
    if any(stage["interrupted"] for stage in table.values()):
        print(
            f"cancelled during {list(table)[-1]}: what was made is kept; "
            f"`wan-lora run --project {args.project}` goes on from there",
            file=sys.stderr,
        )
        return INTERRUPTED_EXIT
    failed = any(stage["failed"] or stage["blocked"] for stage in table.values())
    return 1 if failed or problems.errors else 0


def _print_run_summary(table: dict) -> None:
    print(f"{'asset':18} {'made':>6} {'fresh':>6} {'failed':>6} {'blocked':>7}")
    for asset, stage in table.items():
        print(
            f"{asset:18} {len(stage['materialized']):6d} {stage['skipped_fresh']:6d} "
            f"{len(stage['failed']):6d} {len(stage['blocked']):7d}"
        )
        if stage["made_elsewhere"]:
            print(f"  {len(stage['made_elsewhere'])} made by another run")
        for key in stage["failed"]:
            print(f"  failed: {key}: {stage['errors'].get(key, 'see the run log in the UI')}")


def _problems(runner):
    """Every problem and warning of the project's files and clips, each once, as the runner
    last read them (reading them again takes a second at 30,000 clips)."""
    from wan_lora_dagster.pipeline.catalog import load_catalog
    from wan_lora_dagster.pipeline.run_report import project_problems

    snapshot = runner.snapshot
    if snapshot is None:
        return project_problems(load_catalog(runner.project))
    return project_problems(snapshot.catalog, snapshot.record)


def _print_problems(problems, to_stderr: bool = False) -> None:
    """After the summary: errors (what is not made) and warnings (made, but look at it)."""
    from wan_lora_dagster.pipeline.run_report import ERRORS_MEAN

    if len(problems):
        text = problems.report(errors_mean=ERRORS_MEAN)
        print(f"\n{text}", file=sys.stderr if to_stderr else sys.stdout)


def _status(args: argparse.Namespace) -> int:
    from wan_lora_dagster.pipeline import status_report

    runner = _runner(args.project)
    summary = runner.status()
    problems = _problems(runner)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(status_report.text_view(summary))
    _print_problems(problems, to_stderr=args.json)
    return status_report.exit_status(summary, problems)


def _lineage(args: argparse.Namespace) -> int:
    from wan_lora_dagster.pipeline import lineage
    from wan_lora_dagster.pipeline.catalog import load_catalog

    if bool(args.checkpoint) == bool(args.clip):
        raise UserError("give either a CHECKPOINT (partition key or LoRA file) or --clip CLIP")
    catalog = load_catalog(open_project(args.project))
    if args.clip:
        result = lineage.clip_lineage(catalog, args.clip)
    else:
        result = lineage.checkpoint_lineage(catalog, args.checkpoint)
    if args.json:
        print(json.dumps(result, indent=1))
    elif args.clip:
        print(f"clip {args.clip} fed {len(result['checkpoints'])} checkpoint(s):")
        for row in result["checkpoints"]:
            print(f"  {row['checkpoint']}  caption {row['caption_version']}: {row['caption']}")
    else:
        print(f"{result['checkpoint']} was trained on training set {result['training_set']}:")
        for row in result["clips"]:
            mark = "  (changed since)" if row["changed_since"] else ""
            version = f"[{row['origin']}] {row['caption_version']}"
            print(f"  {row['kind']} {row['clip']} {version}: {row['caption']}{mark}")
    return 0


def _train(args: argparse.Namespace) -> int:
    if not args.dry_run:
        args.select, args.json = "+lora_checkpoints", False
        return _run(args)
    from wan_lora_dagster.pipeline.catalog import load_catalog
    from wan_lora_dagster.pipeline.dry_run import dry_run

    print(dry_run(load_catalog(open_project(args.project))))
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from wan_lora_dagster.pipeline import retraining
    from wan_lora_dagster.pipeline.catalog import load_catalog
    from wan_lora_dagster.pipeline.status import Expectations

    keys = list(dict.fromkeys(args.checkpoint))
    catalog = load_catalog(open_project(args.project))
    retraining.require_retrainable(catalog, Expectations(catalog).plan, keys)
    root, told = catalog.project.root, retraining.kept_aside(catalog)
    for key in keys:
        for kept in retraining.set_aside_damaged(catalog, key):
            print(f"{key}: the damaged file is kept as {kept.relative_to(root)}")
    told |= retraining.kept_aside(catalog)
    runner = _runner(args.project)
    with _progress_bars():
        summary = runner.retrain(keys)
    for kept in sorted(retraining.kept_aside(catalog) - told):  # unrecorded, found in the way
        print(f"a file in the way of the retrained checkpoint is kept as {kept.relative_to(root)}")
    if summary.interrupted:
        print(f"cancelled: `wan-lora retrain {' '.join(keys)}` goes on from there", file=sys.stderr)
        return INTERRUPTED_EXIT
    for key in summary.materialized:
        print(f"{key}: trained again: {runner.snapshot.record('lora_checkpoints', key).file}")
    for key in summary.failed + summary.blocked:
        print(f"{key}: not retrained: {summary.errors.get(key, 'see `wan-lora status`')}")
    if summary.failed or summary.blocked:
        return 1
    print(f"`wan-lora run --project {args.project}` brings the rest up to date")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from wan_lora_dagster.assets.declared import STUDIO_ENV
    from wan_lora_dagster.definitions import PROJECT_ENV
    from wan_lora_dagster.instance.project_instance import open_instance
    from wan_lora_dagster.studio.server import start_studio
    from wan_lora_dagster.supervise import UI_GRACE_SECONDS, supervise

    project = open_project(args.project)
    open_instance(project)  # writes .dagster/dagster.yaml on first use
    os.environ[PROJECT_ENV] = str(project.root)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "dev",
        "-m",
        "wan_lora_dagster.definitions",
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    dagster_url = f"http://{args.host}:{args.port}"
    studio_url, _server = start_studio(project, args.host, args.studio_port, dagster_url)
    os.environ[STUDIO_ENV] = urlsplit(studio_url)._replace(path="", query="").geturl()
    print(f"Dagster UI for {project.root}: {dagster_url}  (Ctrl-C stops both)")
    print(f"Studio (captions, clips) for {project.root}: {studio_url}", flush=True)
    return supervise(command, grace_seconds=UI_GRACE_SECONDS, kill_after_grace=True)


def _worker(args: argparse.Namespace) -> int:
    from wan_lora_dagster.deployment.worker import worker_command
    from wan_lora_dagster.supervise import supervise

    project = open_project(args.project)
    argv, env = worker_command(project, args.queue, args.name, args.concurrency)
    return supervise(argv, env)  # its Celery processes end with it, however it is stopped


def _demo(args: argparse.Namespace) -> int:
    from wan_lora_dagster.pipeline.records import RecordStore

    directory = args.directory.resolve()
    print(f"Demo project: {directory} (synthetic film, offline `tiny` model: plumbing, not art)")
    create_demo_project(directory)
    runner = _runner(directory)
    with _progress_bars():
        summary = runner.run()
    problems = _problems(runner)
    failed = [asset for asset, stage in summary.items() if stage.failed or stage.blocked]
    records = RecordStore(runner.project.out("records"))
    best = records.read("best_lora")
    if failed or best is None:
        _print_problems(problems)
        print(f"The demo did not finish: {', '.join(failed)} failed. See `wan-lora status`.")
        return 1
    _print_demo_outputs(runner.project, best, records.read("eval_videos", best.checkpoint))
    _print_problems(problems)
    return 0


def _print_demo_outputs(project, best: BestRecord, evaluation: EvalRecord) -> None:
    print("\nDone. Outputs:")
    print(f"  LoRA (ComfyUI, diffusers, musubi): {project.root / best.file}")
    print(f"  eval contact sheet:                {project.root / evaluation.contact_sheet}")
    print(f"  validation loss with the LoRA:     {best.validation_loss:.4f}")
    print(f"  validation loss without it:        {best.validation_loss_base:.4f}")
    print(f"  everything derived:                {project.out_dir}")
    print(f"\nOpen the UI: wan-lora ui --project {project.root}  (then http://127.0.0.1:3000)")


class _progress_bars:
    """One terminal bar for the stage at work, fed by the stages' and engines' reports."""

    def __enter__(self):
        self.bar: tqdm | None = None
        self.label = ""
        progress.add_listener(self._update)
        return self

    def _update(self, asset: str, report) -> None:
        if report.resumed is not None:  # a line of its own, above the bar
            tqdm.write(f"{asset}: {report.resumed}", file=sys.stderr)
        label = f"{asset}: {report.stage}" if report.stage != asset else asset
        if self.bar is None or label != self.label or report.total != self.bar.total:
            self._close()
            self.bar = tqdm(total=report.total, desc=label, unit="it", dynamic_ncols=True)
            self.label = label
        self.bar.n = report.done
        if report.loss is not None:
            self.bar.set_postfix(loss=f"{report.loss:.4f}", refresh=False)
        self.bar.refresh()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc_info):
        progress.remove_listener(self._update)
        self._close()


if __name__ == "__main__":
    sys.exit(main())
