"""The training-set manifest: every cache file that feeds a training run, with its caption.

Its hash is the `training_set` data version. Dagster stops tracking partitioned provenance past
100 upstream partitions; this file is what makes staleness and lineage exact at any number of clips.
Paths are relative to the project root so that a moved project keeps its history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.fingerprints import fingerprint

MANIFEST_FORMAT = 1


def _fields(item) -> dict:
    """A flat dataclass's fields as a dict: what `asdict` gives, without its deep copies."""
    return {name: getattr(item, name) for name in item.__dataclass_fields__}


@dataclass(frozen=True)
class ManifestEntry:
    """One clip or still under one dataset section."""

    item_id: str
    kind: str  # "clip" | "still"
    section: str
    latent_files: tuple[str, ...]
    text_file: str
    caption: str
    caption_origin: str  # "auto" | "edited"
    caption_version: str
    latent_version: str
    text_version: str
    num_repeats: int = 1
    held_out: bool = False


@dataclass(frozen=True)
class ExcludedItem:
    item_id: str
    section: str
    reason: str


@dataclass(frozen=True)
class TrainingSetManifest:
    entries: tuple[ManifestEntry, ...]
    excluded: tuple[ExcludedItem, ...] = ()
    root: Path = field(default=Path("."), compare=False)

    @cached_property  # frozen: hashing 30,000 entries once is enough
    def version(self) -> str:
        return fingerprint(MANIFEST_FORMAT, self._content())

    def training_entries(self) -> tuple[ManifestEntry, ...]:
        return tuple(entry for entry in self.entries if not entry.held_out)

    def held_out_entries(self) -> tuple[ManifestEntry, ...]:
        return tuple(entry for entry in self.entries if entry.held_out)

    def resolve(self, relative: str) -> Path:
        return self.root / relative

    def captions_by_item(self) -> dict[str, ManifestEntry]:
        """One entry per item (its caption is the same in every section)."""
        return {entry.item_id: entry for entry in self.entries}

    def _content(self) -> dict:
        return {
            "entries": [_fields(entry) for entry in self.entries],
            "excluded": [_fields(item) for item in self.excluded],
        }

    def to_json(self) -> str:
        return json.dumps(
            {"format": MANIFEST_FORMAT, "version": self.version, **self._content()}, indent=1
        )

    def save(self, directory: Path) -> Path:
        """Write `<directory>/<version>.json`, the version's one content: a file of that name
        that holds anything else (cut short by a failing disk, changed by hand) is written
        again, never recorded as made; one that holds it is left as it is."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.version}.json"
        text = self.to_json()
        try:
            unchanged = path.read_text(encoding="utf-8") == text
        except (FileNotFoundError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:
            write_text_atomic(path, text)
        return path

    @classmethod
    def load(cls, path: Path, root: Path) -> TrainingSetManifest:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = tuple(
            ManifestEntry(**{**entry, "latent_files": tuple(entry["latent_files"])})
            for entry in data["entries"]
        )
        excluded = tuple(ExcludedItem(**item) for item in data["excluded"])
        return cls(entries=entries, excluded=excluded, root=root)
