"""A command run under parent_watch ends, with everything it started, when its parent dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from wan_lora_dagster.testing.processes import default_signals

# The parent starts the watched command (which starts a grandchild, as a trainer starts its
# data-loader workers), prints the command's pid, and sleeps until it is killed.
PARENT = """
import subprocess, sys, time
from wan_lora_dagster.parent_watch import watched
child = [sys.executable, "-c", "import subprocess, sys, time; "
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
         "time.sleep(600)"]
watch = subprocess.Popen(watched(child), start_new_session=True)
print(watch.pid, flush=True)
time.sleep(600)
"""


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, process_group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(process_group) == group and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_sigkilled_parent_leaves_no_process_of_the_command_behind():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        preexec_fn=default_signals,
    )
    group = int(parent.stdout.readline())
    assert _wait_until(lambda: len(_group_members(group)) == 3, 30), "watch, command, grandchild"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_until(lambda: not _group_members(group), 60), _group_members(group)


def test_the_command_s_exit_status_is_the_watch_s():
    from wan_lora_dagster.parent_watch import watched

    assert subprocess.call(watched([sys.executable, "-c", "raise SystemExit(3)"])) == 3
    assert subprocess.call(watched(["/nonexistent/program"]), stderr=subprocess.DEVNULL) == 127
