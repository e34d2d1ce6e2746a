"""Cancelling ends the whole process group: `accelerate launch`, the trainer and its children.

The trainer is the FAKE musubi (fake_musubi_scripts.py) run through the real `accelerate launch`,
so the tree is the one of a real run: launcher -> trainer -> a data-loader-like grandchild.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wan_lora_dagster.engines.musubi import EngineCancelled, process
from wan_lora_dagster.engines.musubi.process import CancelToken, run_command
from wan_lora_dagster.testing.musubi_fixtures import train_request

PROC = Path("/proc")
pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="reads process states from /proc")
DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from wan_lora_dagster.testing.musubi_fixtures import (
    make_caches, make_fake_musubi, make_project, make_weights, musubi_settings, train_request
)
from wan_lora_dagster.engines.background import cancel_on_signals
from wan_lora_dagster.engines.musubi import EngineCancelled, MusubiEngine

root = Path(sys.argv[1])
project = make_project(root / "project")
manifest = make_caches(project)
settings = musubi_settings(make_fake_musubi(root / "clone"), make_weights(root / "weights"))
engine = MusubiEngine(settings, root / "work", on_output=lambda line: print(line, flush=True))
request = train_request(manifest, settings, root / "checkpoints")
try:
    with cancel_on_signals(engine.cancel):
        engine.train(request, lambda report: None, lambda checkpoint: None)
except EngineCancelled as error:
    print(f"CANCELLED: {error}", flush=True)
    sys.exit(3)
"""


def alive(pid: int) -> bool:
    """Running, that is: a zombie waiting for its reaper is dead."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in PROC.iterdir():
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and text in command and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def worker_pid(line: str) -> int | None:
    match = re.search(r"fake data-loader worker pid (\d+)", line)
    return int(match[1]) if match else None


def test_cancel_ends_launcher_trainer_and_grandchild(
    make_engine, manifest, fake_musubi, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_MUSUBI_GRANDCHILD", "1")
    monkeypatch.setenv("FAKE_MUSUBI_STEP_SECONDS", "0.2")
    engine = make_engine()
    workers = []

    def on_output(line: str) -> None:
        if pid := worker_pid(line):
            workers.append(pid)
            threading.Timer(0.3, engine.cancel).start()  # from another thread, as a UI would

    engine.on_output = on_output
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    with pytest.raises(EngineCancelled):
        engine.train(request, lambda report: None, lambda checkpoint: None)
    assert workers, "the fake trainer never started its worker"
    assert not alive(workers[0])
    assert processes_mentioning(str(fake_musubi)) == []


def test_sigterm_to_the_caller_ends_the_group(tmp_path):
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "FAKE_MUSUBI_GRANDCHILD": "1", "FAKE_MUSUBI_STEP_SECONDS": "0.2"},
    )
    output, worker = [], None
    for line in driver.stdout:
        output.append(line)
        if worker := worker_pid(line):
            break
    assert worker, "".join(output)
    driver.send_signal(signal.SIGTERM)
    rest, _ = driver.communicate(timeout=120)
    assert driver.returncode == 3, "".join(output) + rest
    assert "CANCELLED" in rest
    assert not alive(worker)
    assert processes_mentioning(str(tmp_path / "clone")) == []


def test_a_finished_command_leaves_no_process_behind():
    lines = []
    status = run_command(["bash", "-c", "sleep 600 & echo $!"], lines.append, CancelToken())
    assert status == 0
    assert not alive(int(lines[0]))


def test_an_exception_in_the_caller_ends_the_group():
    pids = []

    def on_line(line: str) -> None:
        pids.append(int(line))
        raise KeyboardInterrupt  # what a Ctrl-C, or Dagster's interrupt, raises in the caller

    with pytest.raises(KeyboardInterrupt):
        run_command(["bash", "-c", "sleep 600 & echo $!; wait"], on_line, CancelToken())
    assert not alive(pids[0])


def test_a_process_that_ignores_sigterm_is_killed(monkeypatch):
    monkeypatch.setattr(process, "TERMINATE_GRACE_SECONDS", 0.3)
    cancel, pids = CancelToken(), []

    def on_line(line: str) -> None:
        pids.append(int(line))
        cancel.cancel()

    started = time.monotonic()
    with pytest.raises(EngineCancelled):
        run_command(["bash", "-c", "trap '' TERM; echo $$; sleep 600"], on_line, cancel)
    assert not alive(pids[0])
    assert time.monotonic() - started < 60


def test_a_cancel_before_the_start_runs_nothing(tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    marker = tmp_path / "ran"
    with pytest.raises(EngineCancelled):
        run_command(["touch", str(marker)], lambda line: None, cancel)
    assert not marker.exists()
    assert not cancel.cancelled, "a cancellation stops one command, not the next"
