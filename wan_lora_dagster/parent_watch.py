"""Runs a command that must not outlive the process that started it (no orphans).

    python parent_watch.py PARENT_PID -- COMMAND ARGS...

A trainer (musubi-tuner under `accelerate launch`, with its data-loader workers) or `dagster dev`
(its webserver, daemon and code servers) is started through this watch in a new session: the
watch leads the process group of everything the command spawns. When the parent is gone (a
SIGKILLed `wan-lora run` or `wan-lora ui`: nothing of it can clean up), the watch ends the whole
group: SIGTERM to the command, so a trainer stops as on a cancel, keeping the state it saved at
its last checkpoint for the next run to resume, then SIGTERM and SIGKILL to what is left. A
SIGTERM or SIGINT to the watch itself is passed on to the command.

It runs as a script (`python -I`, this file's path) and imports nothing of the package: it starts
in tens of milliseconds and holds no model.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.5
COMMAND_GRACE_SECONDS = 20.0
GROUP_GRACE_SECONDS = 2.0


def watched(argv: list[str]) -> list[str]:
    """argv run under this watch, bound to the calling process."""
    return [sys.executable, "-I", os.path.abspath(__file__), str(os.getpid()), "--", *argv]


def main(arguments: list[str]) -> int:
    parent, separator, *command = arguments
    if separator != "--" or not command:
        print("usage: parent_watch.py PARENT_PID -- COMMAND ...", file=sys.stderr)
        return 2
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"cannot start {command[0]}: {error}", file=sys.stderr)
        return 127

    def pass_on(number, _frame):
        if child.poll() is None:
            child.send_signal(number)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, pass_on)
    while child.poll() is None:
        if os.getppid() != int(parent):
            end_group(child)
            break
        time.sleep(POLL_SECONDS)
    code = child.wait()
    return 128 - code if code < 0 else code


def end_group(child: subprocess.Popen) -> None:
    """The parent is gone: stop the command, then everything else of this process group."""
    child.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=COMMAND_GRACE_SECONDS)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    group = os.getpgrp()
    os.killpg(group, signal.SIGTERM)
    time.sleep(GROUP_GRACE_SECONDS)
    os.killpg(group, signal.SIGKILL)  # ends this watch too, last


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
