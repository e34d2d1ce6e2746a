"""Steps' output kept for the UI and copied to the terminal, with nothing that Ctrl-C reaches but
wan-lora itself.

Dagster's LocalComputeLogManager keeps each step's stdout and stderr in files (the UI shows them)
and copies them back to the terminal through `tail -F`, watched by a Python script that ends the
tail if the step's process dies (`watch_orphans.py`). Both run in the terminal's process group: a
Ctrl-C of `wan-lora run` reached them too, and each script, stopped in `time.sleep`, printed a
KeyboardInterrupt traceback. Here the tail runs under our parent_watch, in a session of its own:
Ctrl-C reaches only wan-lora, which ends the tail when the step ends, and the watch ends it if
wan-lora is killed. The files, their place and the UI's view of them are Dagster's own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from wan_lora_dagster.dagster_internals import (
    IO_TYPE_EXTENSION,
    CapturedLogContext,
    ComputeIOType,
    LocalComputeLogManager,
    ensure_file,
    redirect_to_file,
    touch_file,
)
from wan_lora_dagster.parent_watch import watched

TAIL_STOP_SECONDS = 10.0


class TerminalComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs, copied to the terminal by a tail that Ctrl-C does not reach."""

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        stdout = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        stderr = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with _mirrored(sys.stdout, stdout), _mirrored(sys.stderr, stderr):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the UI's sign that the step ended

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> TerminalComputeLogManager:
        return cls(inst_data=inst_data, **config_value)


def compute_logs_config(home: Path) -> dict:
    """The instance's `compute_logs` block: Dagster's default folder, our manager."""
    return {
        "module": __name__,
        "class": TerminalComputeLogManager.__name__,
        "config": {"base_dir": str(home / "storage")},
    }


@contextmanager
def _mirrored(stream, path: str) -> Iterator[None]:
    """The stream's file descriptor written to `path`, and `path` copied to the stream."""
    ensure_file(path)
    tail = subprocess.Popen(
        watched(["tail", "-F", "-c", "+0", path]),
        stdout=stream if _has_fileno(stream) else None,
        start_new_session=True,
    )
    try:
        with redirect_to_file(stream, path):
            yield
    finally:
        tail.terminate()  # the watch passes it on to the tail
        try:
            tail.wait(timeout=TAIL_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            tail.kill()
            tail.wait()


def _has_fileno(stream) -> bool:
    """A test's captured stream has none: the tail then writes where this process's fd goes."""
    try:
        return stream.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        return False
