"""Every problem of the user's files, found in one pass and reported together.

Loading a project does not stop at the first mistake: each check adds what it finds here, with
the file and line to fix, and the caller decides what still runs (the clips of every other film).
A problem of a whole file reads as a sentence about it (`films/a.m4a is not a video: ...`); one
of a line starts with `file:line:`, as compilers print it, so terminals and editors can jump there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wan_lora_dagster.errors import ConfigError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user's file. `file` is None only for a message that already names
    its places (an overlap names both lines)."""

    file: Path | None
    line: int | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.file} {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class Problems:
    """A collector: errors (what they concern is not made) and warnings (it is, but look)."""

    def __init__(self) -> None:
        self._items: list[Problem] = []
        # kept apart as they come: 30,000 ranges may give as many warnings
        self._seen: set[Problem] = set()
        self._by_severity: dict[str, list[Problem]] = {"error": [], "warning": []}

    def error(self, file: Path | None, line: int | None, message: str) -> None:
        self._add(Problem(file, line, message, "error"))

    def warning(self, file: Path | None, line: int | None, message: str) -> None:
        self._add(Problem(file, line, message, "warning"))

    def _add(self, problem: Problem) -> None:
        if problem not in self._seen:  # each shown once, however many checks meet it
            self._seen.add(problem)
            self._items.append(problem)
            self._by_severity[problem.severity].append(problem)

    def extend(self, other: Problems) -> None:
        for problem in other:
            self._add(problem)

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def errors(self) -> Sequence[Problem]:
        return self._by_severity["error"]

    @property
    def warnings(self) -> Sequence[Problem]:
        return self._by_severity["warning"]

    def raise_errors(self) -> None:
        """Raise ProblemsError listing every error at once, if there is any."""
        if self.errors:
            raise ProblemsError(self)

    def report(self, errors_mean: str = "") -> str:
        """Errors, then warnings, one per line under a count; empty when there is nothing."""
        blocks = []
        for found, noun, meaning in (
            (self.errors, "problem", errors_mean),
            (self.warnings, "warning", ""),
        ):
            if found:
                plural = noun if len(found) == 1 else f"{noun}s"
                heading = f"{len(found)} {plural}" + (f" ({meaning})" if meaning else "") + ":"
                blocks.append("\n".join([heading, *(f"  {problem}" for problem in found)]))
        return "\n".join(blocks)


def read_text(path: Path, problems: Problems) -> str | None:
    """The text of a file the user wrote, or None with why not in `problems` (a byte that is not
    UTF-8 is named by its line). A byte-order mark, as editors on Windows write, is dropped."""
    try:
        data = path.read_bytes()
    except OSError as error:
        problems.error(path, None, f"cannot be read: {error.strerror or error}")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problems.error(path, line, f"not UTF-8 text ({error.reason}); save the file as UTF-8")
        return None


class ProblemsError(ConfigError):
    """Every error of a load, one per line; `problems` holds them with their files and lines."""

    def __init__(self, problems: Problems):
        super().__init__("\n".join(str(problem) for problem in problems.errors))
        self.problems = problems
