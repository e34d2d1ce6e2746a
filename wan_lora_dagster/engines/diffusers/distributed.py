"""Data-parallel training of the diffusers engine: N worker processes of one machine, one per GPU.

The workers (engines.diffusers.distributed_worker, one per rank) run in a process group of their
own, so a cancel reaches them all and a Ctrl-C in the terminal reaches only the parent, which
decides. torch.distributed joins them (NCCL on CUDA, gloo on a CPU); rank 0 reports progress and
checkpoints as JSON lines on its standard output, which this process turns back into the engine's
callbacks. A cancel asks the workers to stop (SIGTERM: they agree on the step, rank 0 saves the
state) and kills what is left after a grace period; a worker that fails takes the others down with
it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from wan_lora_dagster.engines.base import (
    CheckpointInfo,
    Progress,
    ProgressCallback,
    TextJob,
    TrainRequest,
)
from wan_lora_dagster.errors import EngineCancelled, EngineError

logger = logging.getLogger(__name__)

WORKER_MODULE = "wan_lora_dagster.engines.diffusers.distributed_worker"
STOP_GRACE_SECONDS = 120.0  # rank 0 finishes its step and writes the state
LOG_TAIL = 3000


def write_request(request: TrainRequest, folder: Path) -> dict:
    """The request as JSON values (the manifest as a file beside it)."""
    manifest = request.manifest.save(folder)
    return {
        "manifest": str(manifest),
        "root": str(request.manifest.root),
        "settings": request.settings.model_dump(mode="json"),
        "sections": [section.model_dump(mode="json") for section in request.sections],
        "output_dir": str(request.output_dir),
        "output_name": request.output_name,
        "header": request.header,
        "log_dir": None if request.log_dir is None else str(request.log_dir),
        "empty_caption": request.empty_caption and _job_values(request.empty_caption),
    }


class WorkerGroup:
    """One data-parallel training: `train` runs it to the end; `cancel` from any thread."""

    def __init__(self, world_size: int, model: dict):
        """model: what each worker loads (folder, device type, precision: see the worker)."""
        self.world_size = world_size
        self.model = model
        self.processes: list[subprocess.Popen] = []
        self.cancelled = threading.Event()
        self._lock = threading.Lock()

    def train(
        self,
        request: TrainRequest,
        progress: ProgressCallback,
        on_checkpoint: Callable[[CheckpointInfo], None],
    ) -> list[CheckpointInfo]:
        with tempfile.TemporaryDirectory(prefix="wan-lora-ranks-") as scratch:
            folder = Path(scratch)
            spec = folder / "spec.json"
            spec.write_text(
                json.dumps({"request": write_request(request, folder), "model": self.model}),
                encoding="utf-8",
            )
            self._start(spec, folder)
            try:
                returned = self._follow(progress, on_checkpoint)
            except BaseException:
                self.cancel()
                raise
            finally:
                self._end()
            self._raise_for_failures(folder)
            if returned is None:
                raise EngineError(
                    f"the training workers ended without a result:\n{self._tail(folder)}"
                )
            return returned

    def cancel(self) -> None:
        """Ask every worker to stop after its step; kill them if they have not within the grace."""
        self.cancelled.set()
        self._signal(signal.SIGTERM)

    def _start(self, spec: Path, folder: Path) -> None:
        environment = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(_free_port()),
            "WORLD_SIZE": str(self.world_size),
            "PYTHONUNBUFFERED": "1",
        }
        threads = max(1, (os.cpu_count() or 1) // self.world_size)
        with self._lock:
            for rank in range(self.world_size):
                # a process group of their own in this session (a new session could not be
                # joined by the other ranks); the terminal's Ctrl-C reaches this process only
                group = 0 if rank == 0 else self.processes[0].pid
                log = open(folder / f"rank{rank}.log", "wb")  # noqa: SIM115 (the child owns it)
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", WORKER_MODULE, str(spec)],
                        env={
                            **environment,
                            "RANK": str(rank),
                            "LOCAL_RANK": str(rank),
                            "OMP_NUM_THREADS": str(threads),
                        },
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                        stderr=log,
                        process_group=group,
                    )
                )
                log.close()
        threading.Thread(target=self._watch, name="rank-watch", daemon=True).start()

    def _follow(self, progress: ProgressCallback, on_checkpoint) -> list[CheckpointInfo] | None:
        """Rank 0's reports, as they come, until it closes its output."""
        returned = None
        for line in self.processes[0].stdout:
            event = json.loads(line)
            if "progress" in event:
                progress(Progress.from_json(event["progress"]))
            elif "checkpoint" in event:
                on_checkpoint(_checkpoint(event["checkpoint"]))
            elif "returned" in event:
                returned = [_checkpoint(item) for item in event["returned"]]
        return returned

    def _watch(self) -> None:
        """A worker that fails leaves the others waiting in a collective: end them all."""
        while self.processes and any(process.poll() is None for process in self.processes):
            if any(process.poll() not in (None, 0) for process in self.processes):
                self._signal(signal.SIGTERM)
                self._kill_after(STOP_GRACE_SECONDS)
                return
            time.sleep(0.2)

    def _end(self) -> None:
        """Wait for every worker; a cancel waits the grace, then kills the group."""
        if self.cancelled.is_set():
            self._kill_after(STOP_GRACE_SECONDS)
        for process in self.processes:
            process.wait()
        self._signal(signal.SIGKILL)  # anything a worker started and left behind
        if self.cancelled.is_set():
            raise EngineCancelled("cancelled")

    def _kill_after(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(process.poll() is not None for process in self.processes):
                return
            time.sleep(0.1)
        logger.warning("training workers still running %.0f s after the stop: killed", seconds)
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        with self._lock:
            if not self.processes:
                return
            with contextlib.suppress(ProcessLookupError):  # every worker has exited
                os.killpg(self.processes[0].pid, number)

    def _raise_for_failures(self, folder: Path) -> None:
        failed = [
            (rank, process.returncode)
            for rank, process in enumerate(self.processes)
            if process.returncode != 0
        ]
        if failed:
            rank, code = failed[0]
            raise EngineError(
                f"training worker {rank} of {self.world_size} failed (exit code {code}):\n"
                f"{self._tail(folder, rank)}"
            )

    @staticmethod
    def _tail(folder: Path, rank: int = 0) -> str:
        text = (folder / f"rank{rank}.log").read_text(encoding="utf-8", errors="replace")
        return text[-LOG_TAIL:]


def checkpoint_event(checkpoint: CheckpointInfo) -> dict:
    return {**asdict(checkpoint), "path": str(checkpoint.path)}


def _job_values(job: TextJob) -> dict:
    return {**asdict(job), "cache_dir": str(job.cache_dir)}


def _checkpoint(values: dict) -> CheckpointInfo:
    return CheckpointInfo(**{**values, "path": Path(values["path"])})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
