"""The curated-moments files: `ranges/<film_stem>.txt`, one moment of the film per line.

    # START END [name] [# note]
    12.5      17.5                    # plain seconds
    01:02.5   +5       bunny_jump     # MM:SS.mmm and a duration; the clip id is `bunny_jump`
    1:02:03.250 1:02:08.250           # HH:MM:SS.mmm

A clip id is the explicit name, else `<film_stem>_<start_ms>-<end_ms>`: it depends on the times
only, never on the line number, so inserting a line never re-assigns another clip's caption.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.problems import Problems, read_text

RANGES_SUFFIX = ".txt"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SECONDS_PATTERN = re.compile(r"\d+(?:\.\d*)?|\.\d+")
CLOCK_PATTERN = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")
# Ranges end at most this far past a film's probed duration: times are written to the millisecond.
END_TOLERANCE = 1e-3
LONGEST_TIME = 1e7  # seconds (115 days): a bigger number is a typo, and would not print
# Overlap warnings named pair by pair; past this many, the rest are counted in one line.
MAX_LISTED_OVERLAPS = 5


@dataclass(frozen=True)
class ClipRange:
    """One curated moment: seconds `start` to `end` of film `film_stem`, from `ranges_file:line`."""

    clip_id: str
    film_stem: str
    start: float
    end: float
    name: str | None
    note: str | None
    ranges_file: Path
    line: int

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def location(self) -> str:
        """`file:line`, for messages."""
        return f"{self.ranges_file}:{self.line}"

    @property
    def span(self) -> str:
        """`MM:SS.mmm-MM:SS.mmm`, for messages."""
        return f"{format_time(self.start)}-{format_time(self.end)}"


def format_time(seconds: float) -> str:
    """`MM:SS.mmm`, or `H:MM:SS.mmm` from one hour on."""
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    clock = f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
    return f"{hours}:{clock}" if hours else clock


def parse_time(text: str) -> float:
    """Seconds from `12`, `12.5`, `01:02.5` or `1:02:03.250`; ValueError says what is wrong."""
    if SECONDS_PATTERN.fullmatch(text):
        return _within_reason(text, float(text))
    clock = CLOCK_PATTERN.fullmatch(text)
    if not clock:
        raise ValueError(f"'{text}' is not a time (use seconds like 12.5 or [HH:]MM:SS[.mmm])")
    hours, minutes, seconds = int(clock[1] or 0), int(clock[2]), float(clock[3])
    if seconds >= 60:
        raise ValueError(f"'{text}' has {seconds:g} seconds (at most 59.999)")
    if clock[1] is not None and minutes >= 60:
        raise ValueError(f"'{text}' has {minutes} minutes (at most 59 after the hours)")
    whole = _within_reason(text, hours * 3600 + minutes * 60)  # an int: checked before a float
    return _within_reason(text, whole + seconds)


def _within_reason(text: str, seconds: float) -> float:
    if not seconds <= LONGEST_TIME:  # also refuses inf and nan
        raise ValueError(f"'{text}' is longer than any film ({LONGEST_TIME:.0f} s at most)")
    return seconds


def parse_ranges_file(path: Path) -> tuple[list[ClipRange], list[str]]:
    """The ranges of one file, in file order, and warnings (overlapping ranges).

    Raises ConfigError (a ProblemsError) listing every bad line as `file:line: what is wrong`.
    """
    problems = Problems()
    ranges = read_ranges_file(path, problems)
    problems.raise_errors()
    return ranges, [str(warning) for warning in problems.warnings]


def read_ranges_file(path: Path, problems: Problems) -> list[ClipRange]:
    """The good ranges of one file, in file order; each bad line (and each overlap, a warning)
    goes to `problems`, and a clip id used again keeps its first line."""
    ranges, stem = [], path.stem  # the film's: each line's clip id starts with it
    for number, text in enumerate(_read_lines(path, problems), start=1):
        try:
            clip_range = _parse_line(text, path, stem, number)
        except ValueError as error:
            problems.error(path, number, str(error))
            continue
        if clip_range is not None:
            ranges.append(clip_range)
    ranges = _without_duplicate_ids(ranges, problems)
    for overlap in _overlaps(ranges):
        problems.warning(None, None, overlap)
    return ranges


def load_project_ranges(
    films: dict[str, Path], ranges_dir: Path, problems: Problems
) -> list[ClipRange]:
    """Every film's good ranges, sorted by (film_stem, start); every problem goes to `problems`.

    `films` maps a film stem to its path. A film without a ranges file is a warning; a ranges
    file without a film, a bad line and a clip id used twice are errors.
    """
    ranges_files = find_ranges_files(ranges_dir)
    for stem, film in sorted(films.items()):
        if stem not in ranges_files:
            problems.warning(
                film, None, f"has no ranges file: create {ranges_dir / (stem + RANGES_SUFFIX)}"
            )
    for stem, path in sorted(ranges_files.items()):
        if stem not in films:
            problems.error(
                path,
                None,
                f"has no film: there is no films/{stem}.* (add the film, or remove this file)",
            )
    ranges = []
    for stem in sorted(films.keys() & ranges_files.keys()):
        errors_before = len(problems.errors)
        film_ranges = read_ranges_file(ranges_files[stem], problems)
        if not film_ranges and len(problems.errors) == errors_before:
            problems.warning(
                ranges_files[stem], None, f"declares no ranges, so {films[stem]} is unused"
            )
        ranges += film_ranges
    ranges = _without_duplicate_ids(ranges, problems)
    return sorted(ranges, key=lambda r: (r.film_stem, r.start, r.end))


def ranges_within(
    ranges: list[ClipRange], film_duration: float, film_path: Path, problems: Problems
) -> list[ClipRange]:
    """The ranges that end within the film; each other one is an error naming its `file:line`."""
    within = []
    for clip_range in ranges:
        if clip_range.end <= film_duration + END_TOLERANCE:
            within.append(clip_range)
            continue
        problems.error(
            clip_range.ranges_file,
            clip_range.line,
            f"range {clip_range.span} ends past the end of {film_path} "
            f"(duration {film_duration:.3f} s)",
        )
    return within


def _read_lines(path: Path, problems: Problems) -> list[str]:
    """The file's lines as an editor numbers them (split at newlines only); none if unreadable."""
    text = read_text(path, problems)
    return [] if text is None else text.split("\n")


def _parse_line(text: str, path: Path, stem: str, number: int) -> ClipRange | None:
    """A line's range, or None for a blank or comment line; ValueError says what is wrong."""
    fields_text, _, note_text = text.partition("#")
    fields = fields_text.split()
    if not fields:
        return None
    if len(fields) not in (2, 3):
        raise ValueError(f"expected 'START END [name] [# note]', got '{fields_text.strip()}'")
    start = parse_time(fields[0])
    end = _parse_end(fields[1], start)
    name = fields[2] if len(fields) == 3 else None
    if name is not None and not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"'{name}' is not a clip name (letters, digits, '_', '.', '-'; "
            "starting with a letter or digit)"
        )
    return ClipRange(
        clip_id=name or f"{stem}_{round(start * 1000)}-{round(end * 1000)}",
        film_stem=stem,
        start=start,
        end=end,
        name=name,
        note=note_text.strip() or None,
        ranges_file=path,
        line=number,
    )


def _parse_end(text: str, start: float) -> float:
    if text.startswith("+"):
        duration = parse_time(text[1:])
        if duration <= 0:
            raise ValueError(f"duration '{text}' must be more than zero")
        return start + duration
    end = parse_time(text)
    if end <= start:
        raise ValueError(f"end {format_time(end)} is not after start {format_time(start)}")
    return end


def find_ranges_files(ranges_dir: Path) -> dict[str, Path]:
    """Film stem -> its ranges file, for every `*.txt` in ranges/."""
    if not ranges_dir.is_dir():
        return {}
    return {
        path.stem: path
        for path in sorted(ranges_dir.iterdir())
        if path.suffix == RANGES_SUFFIX and path.is_file()
    }


def _without_duplicate_ids(ranges: list[ClipRange], problems: Problems) -> list[ClipRange]:
    """The ranges with the first line of each clip id; each later line of one is an error."""
    first_by_id: dict[str, ClipRange] = {}
    for clip_range in ranges:
        first = first_by_id.setdefault(clip_range.clip_id, clip_range)
        if first is not clip_range:
            problems.error(
                clip_range.ranges_file,
                clip_range.line,
                f"clip id '{clip_range.clip_id}' is already used at {first.location}; "
                "give one of them another name or other times",
            )
    return list(first_by_id.values())


def _overlaps(ranges: list[ClipRange]) -> list[str]:
    """A warning per overlapping pair, up to MAX_LISTED_OVERLAPS, then one line counting the rest:
    overlapping clips put the same frames in training twice.

    A sweep by start time with a heap of the ends still open: n log n plus the number of pairs,
    which are counted, not formatted (30,000 short ranges over one film make millions of pairs).
    """
    by_start = sorted(ranges, key=lambda r: (r.start, r.end))
    open_ends: list[tuple[float, int]] = []  # (end, index in by_start) of ranges still open
    pairs: list[tuple[int, int]] = []
    count = 0
    for index, later in enumerate(by_start):
        while open_ends and open_ends[0][0] <= later.start:
            heapq.heappop(open_ends)
        count += len(open_ends)
        if len(pairs) <= MAX_LISTED_OVERLAPS:
            pairs += [(earlier, index) for _, earlier in open_ends]
        heapq.heappush(open_ends, (later.end, index))
    warnings = [
        f"{by_start[a].location} ({by_start[a].span}) overlaps {by_start[b].location} "
        f"({by_start[b].span})"
        for a, b in sorted(pairs)[:MAX_LISTED_OVERLAPS]
    ]
    if count > MAX_LISTED_OVERLAPS:
        warnings.append(
            f"{by_start[0].ranges_file}: {count - MAX_LISTED_OVERLAPS} more pairs of ranges "
            f"overlap ({count} in all)"
        )
    return warnings
