"""Small JSON records of what each asset partition was made from and what it holds.

The files under out/ are the truth about what exists; a record says which inputs made them, so a
partition is fresh exactly when its record's fingerprint equals the one its inputs give now.
Each asset's record is a typed structure declared beside the code that makes it, registered
here by asset name (`record_of`) so that the store reads every record as its type.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wan_lora_dagster.disk_full import write_text_atomic
from wan_lora_dagster.fault_injection import fault_injection_point
from wan_lora_dagster.pipeline.made_files import describe
from wan_lora_dagster.small_files import read_bytes

UNPARTITIONED = "__all__"
R = TypeVar("R", bound="Record")
RECORD_TYPES: dict[str, type[Record]] = {}


@dataclass(frozen=True, kw_only=True)
class Record:
    """What every record holds: what made it (`fingerprint`), what downstream sees
    (`data_version`: equal to the fingerprint where the output is a pure function of the inputs),
    and the size, mtime and hash of each file it made, as they were made."""

    fingerprint: str
    data_version: str
    made_files: dict[str, dict] = field(default_factory=dict)

    def made_paths(self) -> list[str]:
        """The files its step made, relative to the project (those under out/ are checked)."""
        return []

    def to_json(self) -> dict[str, Any]:
        """The record as stored: optional fields that are unset are left out."""
        data = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and item.default is None:
                continue
            data[item.name] = _plain(value)
        return data

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        """The record as stored, its fields set directly: a frozen dataclass's __init__ costs as
        much as parsing the JSON, and `wan-lora status` reads 120,000 records at 30,000 clips."""
        defaults, factories = _defaults_of(cls)
        values = {**defaults, **data}
        for name, factory in factories.items():
            if name not in data:
                values[name] = factory()
        return _built(cls, values)

    def without_made_files(self: R) -> R:
        """A copy less its made files' sizes and hashes (a third of a record's bytes)."""
        return _built(type(self), {**self.__dict__, "made_files": {}})


def _built(record_type: type[R], values: dict[str, Any]) -> R:
    record = object.__new__(record_type)
    record.__dict__.update(values)
    return record


@functools.cache
def _defaults_of(record_type: type) -> tuple[dict[str, Any], dict[str, Callable[[], Any]]]:
    """A record type's field defaults, and the factories of its mutable ones."""
    defaults, factories = {}, {}
    for item in dataclasses.fields(record_type):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            factories[item.name] = item.default_factory
    return defaults, factories


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items() if v is not None}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def record_of(*assets: str) -> Callable[[type[R]], type[R]]:
    """Register a record type as the one of `assets` (clips' and stills' kinds share one)."""

    def register(record_type: type[R]) -> type[R]:
        for asset in assets:
            RECORD_TYPES[asset] = record_type
        return record_type

    return register


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves the old file or the new one, never half of one."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


class RecordStore:
    """One record per asset partition, under out/records/<asset>/<partition>.json."""

    def __init__(self, root: Path):
        self.root = root
        self._root = str(root)

    def path(self, asset: str, partition: str = UNPARTITIONED) -> Path:
        return self.root / asset / f"{partition}.json"

    def read(self, asset: str, partition: str = UNPARTITIONED) -> Record | None:
        # Plain strings, no stat and no Path objects: `wan-lora status` reads a record per clip
        # per stage, 120,000 of them at 30,000 clips.
        try:
            data = json.loads(read_bytes(f"{self._root}/{asset}/{partition}.json"))
        except (FileNotFoundError, IsADirectoryError):
            return None
        return record_type(asset).from_json(data)

    def write(self, asset: str, partition: str, record: R) -> R:
        """Write the record with the size, mtime and hash of each file it made under out/;
        returns it as written."""
        made = describe(self.root.parents[1], record.made_paths())  # root: <project>/out/records
        record = dataclasses.replace(record, made_files=made)
        fault_injection_point(asset, "made")
        write_json_atomic(self.path(asset, partition), record.to_json())
        return record

    def delete(self, asset: str, partition: str) -> None:
        self.path(asset, partition).unlink(missing_ok=True)

    def read_many(self, asset: str, partitions: list[str]) -> dict[str, Record | None]:
        return {partition: self.read(asset, partition) for partition in partitions}


def record_type(asset: str) -> type[Record]:
    """The asset's record type. Each registers as its module loads; a command that has not
    loaded the module yet (`wan-lora lineage` reads checkpoints without the training code)
    loads the whole asset table, which imports every module that makes an asset."""
    if asset not in RECORD_TYPES:
        import wan_lora_dagster.pipeline.asset_table  # noqa: F401
    return RECORD_TYPES[asset]
