"""The page's update button: the command line's `wan-lora run --select +training_set`, in a
thread of the studio, through the same runner and so the same claims as every other run."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

from wan_lora_dagster import progress
from wan_lora_dagster.engines.base import Progress
from wan_lora_dagster.project import Project

UPDATE_SELECTION = "+training_set"


@dataclass
class UpdateState:
    running: bool = False
    progress: str = ""  # the stage at work, as the command line's bar names it
    summary: dict = field(default_factory=dict)  # asset -> what the stage made, failed...
    error: str = ""
    runs: int = 0  # updates finished since the studio started


class Updater:
    """One update at a time; `state` tells the page how it goes. `on_done` runs after each."""

    def __init__(self, project: Project, on_done=lambda: None):
        self.project, self.on_done = project, on_done
        self._state = UpdateState()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def state(self) -> dict:
        with self._lock:
            return asdict(self._state)

    def start(self) -> bool:
        """Start an update unless one is running; whether one was started."""
        with self._lock:
            if self._state.running:
                return False
            self._state = UpdateState(running=True, runs=self._state.runs)
            self._thread = threading.Thread(target=self._run, name="studio-update", daemon=True)
            self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> dict:
        """The state once the update in hand (if any) has finished, or `timeout` passed."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state()

    def _run(self) -> None:
        progress.add_listener(self._report)
        summary, error = {}, ""
        try:
            from wan_lora_dagster.runner import ProjectRunner  # Dagster: seconds to import

            stages = ProjectRunner(self.project).run(UPDATE_SELECTION)
            summary = {asset: _summary(stage) for asset, stage in stages.items()}
        except Exception as failure:  # the page shows it; the studio goes on
            error = f"{type(failure).__name__}: {failure}"
        finally:
            progress.remove_listener(self._report)
        try:
            self.on_done()
        finally:
            with self._lock:
                runs = self._state.runs + 1
                self._state = UpdateState(False, "", summary, error, runs)

    def _report(self, asset: str, report: Progress) -> None:
        with self._lock:
            self._state.progress = f"{asset}: {progress.describe(report)}"


def _summary(stage) -> dict:
    """A stage's summary as the page shows it: the partitions made, failed and blocked."""
    return {
        "made": stage.materialized,
        "fresh": stage.skipped_fresh,
        "failed": stage.failed,
        "blocked": stage.blocked,
        "errors": stage.errors,
    }
