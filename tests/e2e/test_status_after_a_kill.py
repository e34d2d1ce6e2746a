"""After a training killed with SIGKILL, `wan-lora status` calls the checkpoints it did not save
"not made yet", names them, and finds nothing failed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from wan_lora_dagster.project_builder import demo_recipe, write_recipe
from wan_lora_dagster.testing.commands import wan_lora
from wan_lora_dagster.testing.processes import default_signals

pytestmark = pytest.mark.slow

EVENT_TIMEOUT_S = 900  # a generous bound for a loaded machine; the wait ends on the event


def _records(project) -> set[str]:
    return {path.stem for path in (project / "out/records/lora_checkpoints").glob("*.json")}


def test_checkpoints_a_killed_training_did_not_save_are_not_made_yet(demo_copy, capsys):
    # a new run, long after its first checkpoint: the kill lands while it trains
    write_recipe(demo_copy, **demo_recipe(training={"max_train_epochs": 400}))
    before = _records(demo_copy)
    command = ["run", "--project", str(demo_copy), "--select", "lora_checkpoints"]
    training = subprocess.Popen(
        [sys.executable, "-m", "wan_lora_dagster.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not _records(demo_copy) - before:  # the new run's first checkpoint is recorded
        assert training.poll() is None, "the training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint recorded"
        time.sleep(0.2)
    os.killpg(training.pid, signal.SIGKILL)
    training.wait()
    saved = _records(demo_copy) - before

    status, out = wan_lora(capsys, "status", "--project", demo_copy, "--json")
    checkpoints = json.loads(out)["lora_checkpoints"]
    assert status == 0
    assert checkpoints["failed"] == 0 and checkpoints["partitions"]["failed"] == []
    not_made = checkpoints["partitions"]["missing"]
    assert not_made and not set(not_made) & saved
    assert checkpoints["fresh"] == len(saved) and checkpoints["missing"] == len(not_made)

    status, text = wan_lora(capsys, "status", "--project", demo_copy)
    assert status == 0
    shown = (
        f"lora_checkpoints not made yet: {', '.join(not_made[:10])} and {len(not_made) - 10} more"
    )
    assert shown in text.splitlines()
