"""The films of a project: which of them can be cut, and why each of the others cannot.

Every file a ranges file names is probed once. A file that is not a readable video, and each
range that ends past its film's end, is a problem of its own: the other films' clips are made.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.formats.cache_files import item_id_problem
from wan_lora_dagster.media.probe import VideoInfo, probe_video
from wan_lora_dagster.media.ranges import (
    ClipRange,
    find_ranges_files,
    load_project_ranges,
    ranges_within,
)
from wan_lora_dagster.problems import Problems
from wan_lora_dagster.project import FILM_SUFFIXES, Project

NO_VIDEO_STREAM = "has no video stream"
MAX_LISTED_NAMES = 5  # ranges of one file named for an id that cannot name a file; the rest counted


def cuttable_ranges(
    project: Project, problems: Problems
) -> tuple[dict[str, VideoInfo], list[ClipRange]]:
    """(film stem -> the film as probed, the ranges to cut, sorted by film and start); the rest
    in `problems`."""
    films, ambiguous = _film_files(project, problems)
    ranges = nameable(load_project_ranges(films, project.ranges_dir, problems), films, problems)
    by_film: dict[str, list[ClipRange]] = defaultdict(list)
    for clip_range in ranges:
        if clip_range.film_stem not in ambiguous:
            by_film[clip_range.film_stem].append(clip_range)
    cuttable, kept = {}, []
    for stem, film_ranges in by_film.items():
        info = _probe(films[stem], problems)
        if info is not None:
            cuttable[stem] = info
            kept += ranges_within(film_ranges, info.duration, films[stem], problems)
    return cuttable, kept


def nameable(
    ranges: list[ClipRange], films: dict[str, Path], problems: Problems
) -> list[ClipRange]:
    """The ranges whose clip id can name the clip's files; each other one is an error at its
    line (up to MAX_LISTED_NAMES a ranges file, then one line counting the rest): a film whose
    name cannot be one would otherwise fail its clips in every stage after `clips`."""
    kept, refused = [], defaultdict(list)
    for clip_range in ranges:
        problem = item_id_problem(clip_range.clip_id)
        if problem is None:
            kept.append(clip_range)
        else:
            refused[clip_range.ranges_file].append((clip_range, problem))
    for ranges_file, bad in refused.items():
        film = films[bad[0][0].film_stem]
        for clip_range, problem in bad[:MAX_LISTED_NAMES]:
            problems.error(
                ranges_file,
                clip_range.line,
                f"clip id {clip_range.clip_id!r} of {film} cannot name a file: it {problem}. "
                "Rename the film and this file, or name the range (a third field)",
            )
        if len(bad) > MAX_LISTED_NAMES:
            problems.error(
                ranges_file,
                None,
                f"has {len(bad) - MAX_LISTED_NAMES} more ranges whose clip ids cannot name a file",
            )
    return kept


def _film_files(project: Project, problems: Problems) -> tuple[dict[str, Path], set[str]]:
    """Stem -> file, for each film in films/ and each other file a ranges file names; and the
    stems that name two films (an error: their ranges are not cut).

    A ranges file may name a file of any suffix (an .flv is cut like an .mp4; an .m4a is named
    as not a video); a film with no ranges file is looked for by its suffix only, so subtitles
    or notes beside the films are left alone.
    """
    named = find_ranges_files(project.ranges_dir)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in _visible_files(project.films_dir):
        by_stem[path.stem].append(path)
    films, ambiguous = {}, set()
    for stem, paths in by_stem.items():
        candidates = [path for path in paths if path.suffix.lower() in FILM_SUFFIXES]
        if not candidates and stem in named:
            candidates = paths
        if len(candidates) > 1 and stem in named:
            others = ", ".join(str(path) for path in candidates[1:])
            problems.error(
                candidates[0],
                None,
                f"and {others} share the name '{stem}', so {named[stem]} cannot say which it "
                "means: rename all but one",
            )
            ambiguous.add(stem)
        if candidates:
            films[stem] = candidates[0]
    return films, ambiguous


def _visible_files(directory: Path) -> list[Path]:
    """Files (and links, even broken ones: they are named) not hidden like macOS's `._x.mp4`."""
    if not directory.is_dir():
        return []
    return sorted(
        path
        for path in directory.iterdir()
        if not path.name.startswith(".") and (path.is_symlink() or path.is_file())
    )


def _probe(film: Path, problems: Problems) -> VideoInfo | None:
    """The film's size and duration, or None with why it cannot be cut in `problems`."""
    try:
        if film.stat().st_size == 0:
            problems.error(film, None, "is empty (0 bytes): copy the film again")
            return None
        return probe_video(film)
    except OSError as error:
        problems.error(film, None, f"cannot be read: {error.strerror or error}")
    except MediaError as error:
        reason = str(error).removeprefix(f"{film}: ")
        if reason == NO_VIDEO_STREAM:
            problems.error(film, None, f"is not a video: it {reason}")
        else:
            problems.error(film, None, f"is not a readable video: {reason}")
    return None
