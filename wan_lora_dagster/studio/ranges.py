"""The ranges page: a film's ranges on its timeline with its scene cuts, edited as lines of
`ranges/<film>.txt`.

An edit rewrites the one line it is about (its times; its name and comment kept as they were),
adds a line at the end, or removes one; every other line stays byte for byte. The new file is
checked by the command line's own parser before it is written, so a range the command line would
refuse is refused with its message. Like a caption, the file must still hold what the page read.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.ranges import (
    RANGES_SUFFIX,
    find_ranges_files,
    ranges_within,
    read_ranges_file,
)
from wan_lora_dagster.media.scenes import detect_hard_cuts
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.problems import Problems
from wan_lora_dagster.project import Project
from wan_lora_dagster.studio.captions import hash_of
from wan_lora_dagster.studio.paths import file_in


class RangesConflict(UserError):
    """The ranges file changed since the page read it."""


@dataclass(frozen=True)
class RangeEdit:
    """`line` None: add a line; `start` None: delete `line`; else give `line` these times."""

    line: int | None
    start: str | None = None
    end: str | None = None
    name: str = ""  # of an added range only (a moved one keeps its own)


class RangesEditor:
    def __init__(self, project: Project):
        self.project = project

    def films(self) -> list[str]:
        return sorted(find_ranges_files(self.project.ranges_dir))

    def film_path(self, film: str) -> Path:
        paths = load_catalog(self.project).film_paths
        if film not in paths:
            raise UserError(f"no film {film!r} with ranges to cut in this project")
        return paths[film]

    def timeline(self, film: str) -> dict:
        """The film's duration, scene cuts and ranges (each with its line), and the file's hash."""
        path = self._ranges_file(film)
        film_path = self.film_path(film)
        ranges = read_ranges_file(path, Problems())
        return {
            "film": film,
            "duration": probe_video(film_path).duration,
            "cuts": self._cuts(film_path),
            "ranges": [
                {**asdict(r), "ranges_file": str(r.ranges_file), "span": r.span} for r in ranges
            ],
            "hash": hash_of(path),
        }

    def edit(self, film: str, seen_hash: str, edit: RangeEdit) -> dict:
        path = self._ranges_file(film)
        if hash_of(path) != seen_hash:
            raise RangesConflict(f"{path} changed since the page read it: reload to see it")
        lines = path.read_text(encoding="utf-8").split("\n")
        text = "\n".join(_edited(lines, edit))
        self._check(path, self.film_path(film), text)
        write_text_atomic(path, text)
        return self.timeline(film)

    def _ranges_file(self, film: str) -> Path:
        path = file_in(self.project.ranges_dir, film, RANGES_SUFFIX)
        if not path.is_file():
            raise UserError(f"no ranges file {path}")
        return path

    def _check(self, path: Path, film_path: Path, text: str) -> None:
        """Refuse `text` with the command line's message if it would refuse it as `path`."""
        with tempfile.TemporaryDirectory() as folder:
            candidate = Path(folder) / path.name
            candidate.write_text(text, encoding="utf-8")
            problems = Problems()
            ranges = read_ranges_file(candidate, problems)
            ranges_within(ranges, probe_video(film_path).duration, film_path, problems)
            if problems.errors:
                messages = "\n".join(str(error) for error in problems.errors)
                raise UserError(messages.replace(str(candidate), str(path)))

    def _cuts(self, film_path: Path) -> list[float]:
        """The film's scene cuts, found once per film file (a whole film's decode)."""
        cache = self.project.out("studio", "cuts", f"{film_path.name}.json")
        stat = film_path.stat()
        key = [stat.st_size, stat.st_mtime_ns]
        if cache.exists():
            stored = json.loads(cache.read_text())
            if stored["key"] == key:
                return stored["cuts"]
        cuts = detect_hard_cuts(film_path)
        write_text_atomic(cache, json.dumps({"key": key, "cuts": cuts}))
        return cuts


def _edited(lines: list[str], edit: RangeEdit) -> list[str]:
    if edit.line is None:
        added = f"{edit.start} {edit.end}" + (f" {edit.name}" if edit.name else "")
        ending = [""] if lines and lines[-1] == "" else []
        body = lines[:-1] if ending else lines
        return [*body, added, *ending]
    if not 1 <= edit.line <= len(lines):
        raise UserError(f"there is no line {edit.line}")
    index = edit.line - 1
    if edit.start is None:
        return lines[:index] + lines[index + 1 :]
    fields_text, hash_sign, note = lines[index].partition("#")
    fields = fields_text.split()
    name = f" {fields[2]}" if len(fields) == 3 else ""
    spacing = fields_text[len(fields_text.rstrip()) :] or " "
    comment = f"{spacing}{hash_sign}{note}" if hash_sign else ""
    return [*lines[:index], f"{edit.start} {edit.end}{name}{comment}", *lines[index + 1 :]]
