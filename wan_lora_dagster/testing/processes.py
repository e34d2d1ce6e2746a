"""Starting commands in tests as a user's shell starts them."""

import os
import signal
import subprocess


def default_signals() -> None:
    """`preexec_fn` for a command: SIGINT and SIGTERM at their defaults. A pytest-xdist worker
    ignores SIGINT, and Dagster, once it has run anything in the worker, gives SIGTERM SIGINT's
    handling: a child would inherit both as ignored, and neither Ctrl-C nor a terminate would
    reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_group(process: subprocess.Popen, seconds: float = 60) -> bool:
    """SIGTERM to the process group a command leads (`start_new_session`), SIGKILL if it is
    still running after `seconds`; whether it stopped of itself."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False
