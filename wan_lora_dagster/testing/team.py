"""A team deployment in tests: PostgreSQL and Redis servers, `wan-lora worker` processes on a
demo project switched to them by its dagster.yaml, and what the team tests gate and wait on."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2

from wan_lora_dagster.instance.project_instance import open_instance
from wan_lora_dagster.project import open_project
from wan_lora_dagster.testing.processes import default_signals

WORKER_START_SECONDS = 120
GATE_SECONDS = 120  # how long a gated ffmpeg waits for the other worker before cutting anyway
FFMPEG = shutil.which("ffmpeg")
TASK = re.compile(r"Task execute_plan\[([0-9a-f-]+)\] received")  # a worker took a batch
_database_numbers = itertools.count()


@dataclass
class Servers:
    postgres: str  # URL of the server's first database
    redis: str  # redis://127.0.0.1:PORT/0

    def new_database(self) -> str:
        """A fresh database on the server, so each test's instance starts empty."""
        name = f"wan_lora_{os.getpid()}_{next(_database_numbers)}"
        connection = psycopg2.connect(self.postgres.replace("+psycopg2", ""))
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        connection.close()
        return self.postgres.rsplit("/", 1)[0] + f"/{name}"

    def new_broker(self) -> str:
        """A Redis database of its own (0-15), so no test sees another's queues."""
        return self.redis.rsplit("/", 1)[0] + f"/{next(_database_numbers) % 16}"


def switch_to_team(project: Path, postgres: str, broker: str, **options) -> None:
    """The README's one change to .dagster/dagster.yaml: PostgreSQL storage and the team's
    run launcher in place of the SQLite storage block."""
    open_instance_yaml = project / ".dagster" / "dagster.yaml"
    text = open_instance_yaml.read_text()
    sqlite = "storage:\n  sqlite:\n    base_dir:\n      env: DAGSTER_HOME\n"
    assert sqlite in text, f"{open_instance_yaml}: the SQLite storage block moved"
    settings = "".join(f"    {key}: {value}\n" for key, value in options.items())
    team = (
        f"storage:\n  postgres:\n    postgres_url: {postgres}\n"
        "run_launcher:\n  module: wan_lora_dagster.deployment.team\n  class: TeamRunLauncher\n"
        f"  config:\n    broker: {broker}\n{settings}"
    )
    open_instance_yaml.write_text(text.replace(sqlite, team))


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """`wan-lora worker` and every process under it: its watch, dagster-celery, celery."""
        worker = psutil.Process(self.process.pid)
        return [worker, *worker.children(recursive=True)]

    def kill(self) -> None:
        """SIGKILL to the worker and everything under it at once: a machine lost mid-batch.
        Its Celery processes lead a process group of their own (under parent_watch)."""
        groups = set()
        for process in self.processes():
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(process.pid))
        for group in groups:
            os.killpg(group, signal.SIGKILL)
        self.process.wait()


@dataclass
class Team:
    project: Path
    workers: list[Worker] = field(default_factory=list)

    def start_workers(
        self, *names: str, queues: str = "cpu,gpu", env: dict[str, str] | None = None
    ) -> list[Worker]:
        """`wan-lora worker` processes, started together; returns once each is ready."""
        started = [self._spawn(name, queues, {**os.environ, **(env or {})}) for name in names]
        deadline = time.monotonic() + WORKER_START_SECONDS
        for worker in started:
            while " ready." not in worker.text():
                log = worker.text()[-3000:]
                assert worker.process.poll() is None, f"worker {worker.name} exited:\n{log}"
                assert time.monotonic() < deadline, f"worker {worker.name} not ready:\n{log}"
                time.sleep(0.2)
        self.workers.extend(started)
        return started

    def _spawn(self, name: str, queues: str, env: dict[str, str]) -> Worker:
        log = self.project.parent / f"{name}.log"
        command = [sys.executable, "-m", "wan_lora_dagster.cli", "worker"]
        process = subprocess.Popen(
            [*command, "--project", str(self.project), "--queue", queues, "--name", name],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole, with its children
            preexec_fn=default_signals,
            env=env,
        )
        return Worker(name, process, log)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()


# Only the cuts wait (their output is under out/): libraries probe ffmpeg when imported.
GATED_FFMPEG = """#!/bin/sh
case "$*" in *"/out/"*)
  echo "$*" >> "$FFMPEG_GATE.calls"
  touch "$FFMPEG_GATE"
  tries=0
  while [ "$(ls "{gate}" | grep -vc calls)" -lt 2 ] && [ $tries -lt {tries} ]; do
    sleep 0.1; tries=$((tries + 1))
  done;;
esac
exec {real} "$@"
"""


def gated_ffmpeg(folder: Path, gate: Path) -> Path:
    """An `ffmpeg` first on a worker's PATH that logs each call, then waits until every worker
    has started cutting (a file per worker in `gate`), then runs the real ffmpeg. A worker can
    then only finish its batch while the other one is cutting too: the batches overlap or the
    first waits out GATE_SECONDS."""
    folder.mkdir()
    script = folder / "ffmpeg"
    script.write_text(GATED_FFMPEG.format(gate=gate, tries=GATE_SECONDS * 10, real=FFMPEG))
    script.chmod(0o755)
    return folder


def keep_ranges(project: Path, count: int) -> None:
    ranges = project / "ranges" / "shapes.txt"
    lines = ranges.read_text().splitlines()
    ranges.write_text("\n".join(lines[: count + 1]) + "\n")  # the header, then `count` ranges


def wait_for(condition, what: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def open_instance_of(project: Path):
    return open_instance(open_project(project))
