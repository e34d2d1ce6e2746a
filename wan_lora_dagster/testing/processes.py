"""Starting commands in tests as a user's shell starts them."""

import os
import signal
import subprocess
import sys


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


def wan_lora_in_a_fork(args: list[str], log: str, env: dict[str, str]) -> None:
    """A `multiprocessing` target: the `wan-lora` command as its own process runs it, forked from
    a process that imported the package already (a test that starts many commands saves each the
    seconds of its imports): a session of its own, Ctrl-C and SIGTERM as a shell gives them, its
    output to `log`, its exit status the command's."""
    os.setsid()
    default_signals()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # no interpreter start sets it here
    os.environ.update(env)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    from wan_lora_dagster.cli import main

    sys.exit(main(args))
