"""A seam for fault-injection tests: the command stops itself at a named point of a stage, so a
test kills it, interrupts it or fills its disk exactly there, not after a guessed time.

`WAN_LORA_FAULT_INJECTION=<asset>:made` stops the command (SIGSTOP to its process group, which
the test starts it as the leader of: its ffmpeg and device workers stop too, so nothing writes
while the fault is set up) the first time an item of <asset> is made and its record not yet
written: its files are in place, nothing says so yet, the moment a crash leaves the most to sort
out. The test sees the stop (waitpid with WUNTRACED), does its fault, then sends SIGKILL, or
SIGCONT for the command to go on. Unset (every real run), it is one lookup per record written.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "WAN_LORA_FAULT_INJECTION"
_reached: set[str] = set()  # once a process: the command goes on past it after SIGCONT


def fault_injection_point(asset: str, point: str) -> None:
    """Stop here if the variable names this asset and point, the first time it is reached."""
    wanted = os.environ.get(VARIABLE)
    if wanted is not None and wanted == f"{asset}:{point}" and wanted not in _reached:
        _reached.add(wanted)
        os.killpg(os.getpgrp(), signal.SIGSTOP)
