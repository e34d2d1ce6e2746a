"""A long-running command (`dagster dev` for `wan-lora ui`, `dagster-celery worker` for `wan-lora
worker`) that ends with the command that started it, however that one is stopped.

`dagster dev` starts a webserver, a daemon and code servers. Run as a plain child, a SIGTERM to
`wan-lora ui` (`kill PID`, a service manager) ended only `wan-lora ui`: they ran on, reparented
to init, holding the port. Here the command runs under parent_watch in its own process group: a
SIGTERM, SIGINT or SIGHUP is passed on to it and the group is ended once it exits (or after a
grace), and if `wan-lora ui` is SIGKILLed the watch ends the group itself.

`wan-lora ui`'s grace is short. On a stop `dagster dev` asks its webserver and daemon to stop and
waits up to 60 s for each: the daemon's threads finish what they are at first, which took 30 s
and more, holding the port all that while. What they are at is kept in the instance's database
either way (a run cut short is found by run monitoring), so what is left after UI_GRACE_SECONDS
is killed: asking it again would only start the same slow shutdown again. A worker's Celery gets
SHUTDOWN_GRACE_SECONDS to finish (or hand back) its task, then its group is ended as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from wan_lora_dagster.engines.musubi.process import end_process_group
from wan_lora_dagster.parent_watch import watched

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SHUTDOWN_GRACE_SECONDS = 30.0
UI_GRACE_SECONDS = 3.0
GRACE_EXPIRED = -1
POLL_SECONDS = 0.2


def supervise(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
    kill_after_grace: bool = False,
) -> int:
    """Run argv to its end; a stop signal to this process stops it and everything it started:
    after `grace_seconds`, what is left is killed (`kill_after_grace`) or ended group-wide."""
    process = subprocess.Popen(watched(list(argv)), env=env, start_new_session=True)
    stopping: list[int] = []

    def stop(number, _frame):
        stopping.append(number)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if number == signal.SIGHUP else number)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    code = None
    try:
        code = _wait(process, stopping, grace_seconds)
    finally:
        if code == GRACE_EXPIRED and kill_after_grace:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(process.pid, signal.SIGKILL)
        end_process_group(process)  # what dagster dev left: code servers; waits until all gone
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 + stopping[0] if stopping else code


def _wait(process: subprocess.Popen, stopping: list[int], grace_seconds: float) -> int:
    """Its exit status; once a stop was asked, waits at most grace_seconds (GRACE_EXPIRED)."""
    deadline = None
    while (code := process.poll()) is None:
        if stopping and deadline is None:
            deadline = time.monotonic() + grace_seconds
        if deadline is not None and time.monotonic() > deadline:
            return GRACE_EXPIRED
        time.sleep(POLL_SECONDS)
    return code
