"""A stage's decision: which partitions its step makes, skips as fresh, or leaves for later.

`wan-lora run` decides once per stage, on the snapshot it plans with, and hands the decision to
the step through a small file its run's tag names (the project folder is shared with every
worker); a run launched from the UI has none, and its step decides through the same function
(pipeline/status.py, `Expectations.decide`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import uuid4

from wan_lora_dagster.disk_full import DiskFullError
from wan_lora_dagster.pipeline.records import write_json_atomic
from wan_lora_dagster.project import Project


@dataclass(frozen=True)
class StageDecision:
    asset: str
    make: list[str]  # stale, and every input fresh
    fresh: list[str]  # recorded as they are
    blocked: list[str]  # an input is not fresh: made once it is

    @property
    def stale(self) -> list[str]:
        return [*self.make, *self.blocked]

    def of(self, keys: list[str]) -> StageDecision:
        """The decision for `keys` alone (a run's share of the stage), in their order."""
        wanted = set(keys)
        make, fresh, blocked = (
            [key for key in part if key in wanted] for part in (self.make, self.fresh, self.blocked)
        )
        return StageDecision(self.asset, make, fresh, blocked)

    def covers(self, keys: list[str]) -> bool:
        decided = {*self.make, *self.fresh, *self.blocked}
        return all(key in decided for key in keys)

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> StageDecision:
        return cls(**json.loads(path.read_text()))


@contextmanager
def handed_over(decision: StageDecision, project: Project) -> Iterator[str | None]:
    """The decision in a file of its own for the stage's runs: its path relative to the project,
    removed when the stage ends. None where it cannot be written (a full disk): each step then
    decides again, as one launched from the UI does."""
    path = project.out(".state", "decisions", f"{uuid4().hex}.json")
    try:
        decision.save(path)
    except (OSError, DiskFullError):
        yield None
        return
    try:
        yield str(path.relative_to(project.root))
    finally:
        path.unlink(missing_ok=True)
