"""What the user's project folder declares right now: films, their curated ranges, stills."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from wan_lora_dagster.errors import ConfigError, MediaError
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.ranges import ClipRange, check_ranges_within, load_project_ranges
from wan_lora_dagster.pipeline.batches import Batches, batch_items
from wan_lora_dagster.pipeline.file_hashes import FileHashCache
from wan_lora_dagster.pipeline.records import RecordStore
from wan_lora_dagster.project import Project, fingerprint


@dataclass(frozen=True)
class Catalog:
    project: Project
    film_hashes: dict[str, str]
    ranges: tuple[ClipRange, ...]
    still_paths: dict[str, Path]
    still_hashes: dict[str, str]
    warnings: tuple[str, ...] = field(default=())

    @cached_property
    def ranges_by_clip(self) -> dict[str, ClipRange]:
        return {clip_range.clip_id: clip_range for clip_range in self.ranges}

    @cached_property
    def clip_batches(self) -> Batches:
        return batch_items(self.clip_ids, [r.film_stem for r in self.ranges])

    @cached_property
    def still_batches(self) -> Batches:
        return batch_items(self.still_ids)

    @property
    def clip_ids(self) -> list[str]:
        return [clip_range.clip_id for clip_range in self.ranges]

    @property
    def still_ids(self) -> list[str]:
        return sorted(self.still_hashes)

    @property
    def films_version(self) -> str:
        return fingerprint(self.film_hashes)

    @property
    def ranges_version(self) -> str:
        return fingerprint([(r.clip_id, r.film_stem, r.start, r.end) for r in self.ranges])

    @property
    def stills_version(self) -> str:
        return fingerprint(self.still_hashes)

    @cached_property
    def records(self) -> RecordStore:
        return RecordStore(self.project.out("records"))


def load_catalog(project: Project) -> Catalog:
    """Parse every ranges file, hash every film and still; errors name the file and line."""
    hashes = FileHashCache(project.out(".state", "file_hashes.json"))
    films = project.films()
    # Images in stills/ are training items only where a section trains on stills: without one
    # they would be captioned (or, with no captioner, fail) for nothing.
    stills = project.stills() if project.recipe.sections_for("stills") else {}
    ranges, warnings = load_project_ranges(films, project.ranges_dir)
    _check_durations(films, ranges)
    _check_still_ids(stills, ranges)
    catalog = Catalog(
        project=project,
        film_hashes={stem: hashes.hash(path) for stem, path in films.items()},
        ranges=tuple(ranges),
        still_paths=stills,
        still_hashes={stem: hashes.hash(path) for stem, path in stills.items()},
        warnings=tuple(warnings),
    )
    hashes.save()
    return catalog


def _check_still_ids(stills: dict[str, Path], ranges: list[ClipRange]) -> None:
    """A still's id is its stem; sharing one with a clip would mix up their captions and caches."""
    clips = {clip_range.clip_id: clip_range for clip_range in ranges}
    problems = [
        f"{path}: its id '{still_id}' is also the clip of {clips[still_id].location}; "
        "rename the image or give the range another name"
        for still_id, path in stills.items()
        if still_id in clips
    ]
    if problems:
        raise ConfigError("\n".join(problems))


def _check_durations(films: dict[str, Path], ranges: list[ClipRange]) -> None:
    problems = []
    for stem, film in films.items():
        film_ranges = [clip_range for clip_range in ranges if clip_range.film_stem == stem]
        try:
            check_ranges_within(film_ranges, probe_video(film).duration, film)
        except ConfigError as error:
            problems.append(str(error))
        except MediaError:
            continue  # an unreadable film fails its own clips, with the error naming it
    if problems:
        raise ConfigError("\n".join(problems))
