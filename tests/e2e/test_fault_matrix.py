"""Every fault in every stage has a way back to the bytes an uninterrupted run makes.

For each stage of the demo graph and each fault (SIGKILL of `wan-lora run` mid-stage, SIGINT
mid-stage, a full disk mid-stage, an output file truncated or deleted after the run), the fault is
injected into a copy of an uninterrupted run's project, then the user's way back is taken as the
messages name it (`wan-lora status`, `wan-lora run`, and `wan-lora retrain KEY` where a
checkpoint is damaged), and the project's made files are compared with the uninterrupted run's.
The matrix (stage x fault) is printed at the end of the session's report.

Faults mid-stage land at an event, never after a guessed time: `WAN_LORA_FAULT_INJECTION` makes
`wan-lora run` stop itself (SIGSTOP) when the stage's first item is made and not yet recorded
(wan_lora_dagster/fault_injection.py); the test waits for that stop, then kills, interrupts or
fills the disk and lets it go on.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

import wan_lora_dagster
from wan_lora_dagster.cli import main
from wan_lora_dagster.fault_injection import VARIABLE
from wan_lora_dagster.pipeline.retraining import DAMAGED_FOLDER
from wan_lora_dagster.scaffold import DEMO_RECIPE, create_demo_project
from wan_lora_dagster.testing.processes import wan_lora_in_a_fork

pytestmark = pytest.mark.slow

PACKAGE = wan_lora_dagster.__name__
EVENT_TIMEOUT_S = 900  # a generous bound for a loaded machine; the waits end on the event
IDENTICAL = "recovered identical"
KEPT_ASIDE = f"out/checkpoints/{DAMAGED_FOLDER}/"
RETRAIN = re.compile(r"`wan-lora retrain ([\w-]+)`")
DISK_ROOM = "64m"  # a tmpfs over out/: what the project holds and the stage makes, then filled
INTERRUPTED_EXIT = 130
# Faulted runs are forked from a process that imported the package once: 24 interpreters'
# imports are most of a loaded machine's minutes (processes.wan_lora_in_a_fork).
FORKS = multiprocessing.get_context("forkserver")

# The smallest demo with every stage: two clips (the first made, the second not, when the fault
# lands), two checkpoints, one eval video each.
RANGES = "0.5 1.7\n13.0 14.2 drift\n"
RECIPE_CHANGES = {
    "max_train_epochs = 4": "max_train_epochs = 2",
    "save_every_n_epochs = 2": "save_every_n_epochs = 1",
    "strengths = [0.0, 1.0]": "strengths = [1.0]",
    "num_frames = 9": "num_frames = 5",
    "num_inference_steps = 4": "num_inference_steps = 2",
}


@dataclass(frozen=True)
class Stage:
    output: str  # its output files: the first is the one damaged
    made: tuple[str, ...]  # what it made, removed before a faulted run makes it again
    users: bool = False  # its output is the user's to edit (captions)


STAGES = {
    "clips": Stage("out/clips/*.mp4", ("out/clips/*", "out/thumbnails/*", "out/records/clips/*")),
    "captions": Stage(
        "captions/*.txt",
        ("captions/*", "out/records/captions/*", "out/records/captioner_output/*"),
        users=True,
    ),
    "text_cache": Stage(
        "out/cache/text/*.safetensors", ("out/cache/text/*", "out/records/text_cache/*")
    ),
    "latent_cache": Stage(
        "out/cache/video/*.safetensors", ("out/cache/video/*", "out/records/latent_cache/*")
    ),
    "training_set": Stage(
        "out/training_set/*.json", ("out/training_set/*", "out/records/training_set/*")
    ),
    "lora_checkpoints": Stage(
        "out/checkpoints/*.safetensors",
        ("out/checkpoints/*", "out/records/lora_checkpoints/*", "out/logs/*"),
    ),
    "eval_videos": Stage("out/eval/*/*.mp4", ("out/eval/*", "out/records/eval_videos/*")),
    "best_lora": Stage(
        "out/best/adapter_model.safetensors", ("out/best/*", "out/records/best_lora/*")
    ),
}


class Stuck(Exception):
    """The way back did not get there: what the user saw."""


class NotRun(Exception):
    """This machine cannot inject the fault (mounting a tmpfs needs root)."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The small demo run once, uninterrupted: what every recovered project must equal."""
    project = create_demo_project(tmp_path_factory.mktemp("faults") / "reference")
    recipe = DEMO_RECIPE
    for old, new in RECIPE_CHANGES.items():
        assert old in recipe
        recipe = recipe.replace(old, new)
    (project / "wan_lora.toml").write_text(recipe)
    (project / "ranges" / "shapes.txt").write_text(RANGES)
    assert main(["run", "--project", str(project)]) == 0
    FORKS.set_forkserver_preload(sorted(name for name in sys.modules if name.startswith(PACKAGE)))
    return project


def test_every_fault_in_every_stage_recovers_to_an_uninterrupted_runs_files(
    reference, made_contents, capsys, tmp_path, report_at_the_end
):
    expected = made_contents(reference)
    matrix: dict[str, dict[str, str]] = {}
    for stage in STAGES:
        for fault, inject in FAULTS.items():
            project = tmp_path / f"{stage}-{fault.replace(' ', '_')}"
            shutil.copytree(reference, project, symlinks=True)
            matrix.setdefault(stage, {})[fault] = _cell(
                project, stage, inject, expected, made_contents, capsys
            )
    table = _table(matrix)
    report_at_the_end("fault matrix: stage x fault, after the way back", table)
    print(table)
    cells = [cell for row in matrix.values() for cell in row.values()]
    assert all(cell == IDENTICAL or cell.startswith("not run") for cell in cells), table


def _cell(project, stage, inject, expected, made_contents, capsys) -> str:
    """Inject the fault, take the way back; what the project ended as."""
    try:
        with inject(project, stage):
            _way_back(project, capsys)
            return _compared(made_contents(project), expected)
    except NotRun as reason:
        return f"not run: {reason}"
    except Exception as error:  # Stuck, or what the command raised instead of saying it
        return f"stuck: {error}" if isinstance(error, Stuck) else f"stuck: {error!r}"


def _way_back(project: Path, capsys) -> None:
    """What a user does after a fault: look (`status`), run, and follow what the messages name."""
    _wan_lora(capsys, "status", "--project", project)
    code, said = _wan_lora(capsys, "run", "--project", project)
    if keys := RETRAIN.findall(said):
        code, said = _wan_lora(capsys, "retrain", "--project", project, *dict.fromkeys(keys))
        if code != 0:
            raise Stuck(f"`wan-lora retrain` exited {code}: {_last_lines(said)}")
        code, said = _wan_lora(capsys, "run", "--project", project)
    if code != 0:
        raise Stuck(f"`wan-lora run` exited {code}: {_last_lines(said)}")
    code, said = _wan_lora(capsys, "status", "--project", project)
    if code != 0:
        raise Stuck(f"`wan-lora status` exited {code} after the run: {_last_lines(said)}")


def _wan_lora(capsys, *args) -> tuple[int, str]:
    """The command in this process; its exit status and everything it printed."""
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def _compared(made: dict, expected: dict) -> str:
    """IDENTICAL, or the files that differ. A damaged checkpoint that `wan-lora retrain` set
    aside is kept for the user to look at (and delete), by design."""
    differ = sorted(
        name
        for name in made.keys() | expected.keys()
        if made.get(name, "absent") != expected.get(name, "absent")
        and not name.startswith(KEPT_ASIDE)
    )
    if not differ:
        return IDENTICAL
    shown = ", ".join(
        f"{name} ({'extra' if name not in expected else 'lost' if name not in made else 'differs'})"
        for name in differ[:3]
    )
    return f"recovered different: {shown}" + (f" and {len(differ) - 3} more" if differ[3:] else "")


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "it/s]" not in line]
    return " | ".join(lines[-count:])


# --- the faults: each injects itself, and holds (a full disk's tmpfs) while the way back runs --


@contextmanager
def _sigkill(project: Path, stage: str) -> Iterator[None]:
    """`kill -9` of the command, mid-stage: nothing of it cleans up; what it started (ffmpeg, a
    trainer's watch) goes on, as it would, to find its parent gone."""
    with _stopped_run(project, stage) as process:
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        _signal_group(process, signal.SIGCONT)
    yield


@contextmanager
def _sigint(project: Path, stage: str) -> Iterator[None]:
    """Ctrl-C mid-stage: SIGINT to the terminal's process group; the command stops cleanly."""
    with _stopped_run(project, stage) as process:
        _signal_group(process, signal.SIGINT)
        _signal_group(process, signal.SIGCONT)  # the SIGINT is delivered as it goes on
        code = _exit_status(process)
    said = _output_of(project)
    if code != INTERRUPTED_EXIT or "Traceback" in said:
        raise Stuck(f"Ctrl-C: exit {code}, {_last_lines(said)}")
    yield


@contextmanager
def _full_disk(project: Path, stage: str) -> Iterator[None]:
    """out/ on a small disk that fills up once the stage's first item is made: the command
    fails naming the disk's folder; the way back runs with space again."""
    out = project / "out"
    with _small_disk(out):
        with _stopped_run(project, stage) as process:
            filler = _fill(out / ".filler")
            _signal_group(process, signal.SIGCONT)
            code = _exit_status(process)
        said = _output_of(project)
        if code != 1 or f"no space left on the disk of {out}" not in said:
            raise Stuck(f"full disk: exit {code}, {_last_lines(said)}")
        filler.unlink()
        yield


@contextmanager
def _truncated(project: Path, stage: str) -> Iterator[None]:
    """The stage's first output file cut to half its bytes after the run. A caption is the
    user's: one cut short is their edit, kept and trained on, so the user, seeing it, deletes it
    to have the captioner's text back (the way the README gives)."""
    path = _first_output(project, stage)
    os.truncate(path, path.stat().st_size // 2)
    if STAGES[stage].users:
        path.unlink()
    yield


@contextmanager
def _deleted(project: Path, stage: str) -> Iterator[None]:
    """The stage's first output file deleted after the run."""
    _first_output(project, stage).unlink()
    yield


FAULTS: dict[str, Callable[[Path, str], AbstractContextManager[None]]] = {
    "SIGKILL": _sigkill,
    "SIGINT": _sigint,
    "full disk": _full_disk,
    "truncated": _truncated,
    "deleted": _deleted,
}


def _first_output(project: Path, stage: str) -> Path:
    found = sorted(project.glob(STAGES[stage].output))
    assert found, f"the reference made no {STAGES[stage].output}"
    return found[0]


@contextmanager
def _stopped_run(project: Path, stage: str) -> Iterator[multiprocessing.Process]:
    """`wan-lora run` on the project less what the stage made, stopped (by the seam) once the
    stage's first item is made and not yet recorded. Whatever of it still runs at the end of the
    block is a process the fault left behind."""
    for pattern in STAGES[stage].made:
        for path in project.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    command = ["run", "--project", str(project)]
    process = FORKS.Process(
        target=wan_lora_in_a_fork,
        args=(command, str(_log_of(project)), {VARIABLE: f"{stage}:made"}),
    )
    process.start()
    try:
        _wait_for_the_stop(process, stage, project)
        yield process
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while left := _left_running(process.pid):  # orphans (a trainer's watch) end on their own
            if time.monotonic() > deadline:
                raise Stuck(f"the faulted run left {', '.join(left)} running")
            time.sleep(0.1)
    finally:
        _signal_group(process, signal.SIGKILL)
        process.join()


def _wait_for_the_stop(process: multiprocessing.Process, stage: str, project: Path) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not _stopped(process.pid):
        if process.exitcode is not None:
            raise Stuck(
                f"the faulted run ended ({process.exitcode}) before {stage} made an item: "
                + _last_lines(_output_of(project))
            )
        if time.monotonic() > deadline:
            raise Stuck(f"the faulted run never reached {stage}'s first item")
        time.sleep(0.05)


def _exit_status(process: multiprocessing.Process) -> int | None:
    process.join(EVENT_TIMEOUT_S)
    return process.exitcode


def _stopped(pid: int) -> bool:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    return False


def _left_running(group: int) -> list[str]:
    """The processes of a group still running (a zombie has ended: only its parent's wait is
    missing)."""
    left = []
    for process in psutil.process_iter(["name", "status"]):
        with contextlib.suppress(ProcessLookupError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == group:
                left.append(process.info["name"])
    return left


def _signal_group(process: multiprocessing.Process, number: int) -> bool:
    """Signal every process of the command's group; whether there was any."""
    try:
        os.killpg(process.pid, number)
        return True
    except ProcessLookupError:
        return False


def _log_of(project: Path) -> Path:
    return project.parent / f"{project.name}.log"


def _output_of(project: Path) -> str:
    return _log_of(project).read_text(errors="replace")


@contextmanager
def _small_disk(folder: Path) -> Iterator[None]:
    """A tmpfs over `folder`, holding what it held; unmounted (its files gone) at the end."""
    aside = folder.with_name(f"{folder.name}.aside")
    folder.rename(aside)
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_ROOM},mode=755", "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        raise NotRun("mounting a tmpfs needs root")
    try:
        shutil.copytree(aside, folder, symlinks=True, dirs_exist_ok=True)
        yield
    finally:
        # lazily: a file of it still open somewhere does not keep it over the next cell's files
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def _fill(path: Path) -> Path:
    """A file that takes every free byte of its disk."""
    with open(path, "wb", buffering=0) as filler:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    filler.write(b"\0" * size)
                    filler.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    return path


# --- the matrix, as the report shows it -----------------------------------------------------------


def _table(matrix: dict[str, dict[str, str]]) -> str:
    """Stage x fault, a word a cell; then what each cell that did not recover identical says."""
    width = max(map(len, matrix)) + 2
    lines = [" " * width + "".join(f"{fault:12}" for fault in FAULTS)]
    details = []
    for stage, row in matrix.items():
        words = []
        for fault, cell in row.items():
            word = cell.split(":")[0].removeprefix("recovered ")  # identical, different, stuck
            words.append(f"{word:12}")
            if cell != IDENTICAL:
                details.append(f"{stage} x {fault}: {cell}")
        lines.append(f"{stage:{width}}" + "".join(words))
    return "\n".join(lines + details)
