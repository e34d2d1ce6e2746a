"""What a GPU test or benchmark watches: the GPU's memory and compute processes (nvidia-smi),
and the processes a training left running (/proc)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path


class GpuMemoryPoller:
    """Polls `nvidia-smi` in a thread: the most GPU memory in use while running (MiB)."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.baseline = gpu_memory_used()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> GpuMemoryPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_above_baseline(self) -> int:
        return self.peak - self.baseline

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, gpu_memory_used())


def gpu_memory_used() -> int:
    """MiB in use on GPU 0, as nvidia-smi reports it."""
    output = _nvidia_smi("--query-gpu=memory.used", "--format=csv,noheader,nounits")
    return int(output.splitlines()[0])


def gpu_compute_pids() -> set[int]:
    """The pids nvidia-smi lists as computing (as this container sees them)."""
    output = _nvidia_smi("--query-compute-apps=pid", "--format=csv,noheader")
    return {int(line) for line in output.split() if line.strip().isdigit()}


def live_processes(marker: str) -> dict[int, int]:
    """pid -> process group of every running (not zombie) process whose argv holds marker."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, group = stat[stat.rindex(")") + 2 :].split()[:3]
        if marker in argv and state not in ("Z", "X"):
            found[int(entry.name)] = int(group)
    return found


def _nvidia_smi(*arguments: str) -> str:
    return subprocess.run(
        ["nvidia-smi", *arguments], capture_output=True, text=True, check=True
    ).stdout
