"""What the user's project folder declares right now: films, their curated ranges, stills."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from wan_lora_dagster.captioning.store import CaptionState, CaptionStore, LazyCaptionStates
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.formats.cache_files import item_id_problem
from wan_lora_dagster.media.ranges import ClipRange
from wan_lora_dagster.pipeline.batches import Batches, batch_items
from wan_lora_dagster.pipeline.file_hashes import FileHashCache
from wan_lora_dagster.pipeline.film_checks import cuttable_ranges
from wan_lora_dagster.pipeline.records import RecordStore
from wan_lora_dagster.problems import Problems
from wan_lora_dagster.project import Project
from wan_lora_dagster.recipe.reading import read_recipe


@dataclass(frozen=True)
class Catalog:
    project: Project
    film_paths: dict[str, Path]
    film_hashes: dict[str, str]
    ranges: tuple[ClipRange, ...]
    still_paths: dict[str, Path]
    still_hashes: dict[str, str]
    problems: Problems = field(default_factory=Problems)  # what cannot be made, and why
    film_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (width, height)
    # read each caption when it is asked for (the studio shows a page of them), not all at once
    lazy_captions: bool = False
    _caption_states: dict = field(default_factory=dict, repr=False, compare=False)

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

    def caption_states(
        self, store: CaptionStore, item_ids: list[str]
    ) -> Mapping[str, CaptionState]:
        """Each item's caption as `store` finds it, read once per catalog: a run's sync and its
        plan ask for the same captions (30,000 files, and as many captioner records)."""
        key = (store.captions_dir, store.records_dir, tuple(item_ids))
        if key not in self._caption_states:
            self._caption_states[key] = (
                LazyCaptionStates(store, item_ids) if self.lazy_captions else store.states(item_ids)
            )
        return self._caption_states[key]


def load_catalog(project: Project) -> Catalog:
    """Parse every ranges file, probe every film they name, hash every film and still.

    Every problem of wan_lora.toml, the ranges files, the films and the stills is collected in
    one pass; the catalog holds only what can be made, and its `problems` say what cannot. A bad
    recipe leaves nothing to make: it raises ProblemsError with every problem found.
    """
    problems = Problems()
    recipe = read_recipe(project.config_path, problems)
    films, ranges = cuttable_ranges(project, problems)
    film_paths = {stem: info.path for stem, info in films.items()}
    # Images in stills/ are training items only where a section trains on stills: without one
    # they would be captioned (or, with no captioner, fail) for nothing.
    stills = project.stills() if recipe and recipe.sections_for("stills") else {}
    stills = _without_clip_ids(_nameable_stills(stills, problems), ranges, problems)
    if recipe is None:
        problems.raise_errors()
    hashes = FileHashCache(project.out(".state", "file_hashes.json"))
    catalog = Catalog(
        project=project,
        film_paths=film_paths,
        film_hashes={stem: hashes.hash(path) for stem, path in film_paths.items()},
        film_sizes={stem: (info.width, info.height) for stem, info in films.items()},
        ranges=tuple(ranges),
        still_paths=stills,
        still_hashes={stem: hashes.hash(path) for stem, path in stills.items()},
        problems=problems,
    )
    hashes.save()
    return catalog


def _without_clip_ids(
    stills: dict[str, Path], ranges: list[ClipRange], problems: Problems
) -> dict[str, Path]:
    """A still's id is its stem; sharing one with a clip would mix up their captions and caches."""
    clips = {clip_range.clip_id: clip_range for clip_range in ranges}
    for still_id, path in stills.items():
        if still_id in clips:
            problems.error(
                path,
                None,
                f"has the id '{still_id}' of the clip of {clips[still_id].location}; "
                "rename the image or give the range another name",
            )
    return {still_id: path for still_id, path in stills.items() if still_id not in clips}


def _nameable_stills(stills: dict[str, Path], problems: Problems) -> dict[str, Path]:
    """A still's id is its stem: one that cannot name its files is an error naming the image."""
    kept = {}
    for still_id, path in stills.items():
        if (problem := item_id_problem(still_id)) is None:
            kept[still_id] = path
        else:
            problems.error(path, None, f"cannot be a still: its name {problem}. Rename the image")
    return kept
