"""Which partitions are fresh, unsynced or missing, computed from the project's files alone.

Every asset's fingerprint is a function of its inputs' data versions, so a partition is fresh
exactly when its record holds the fingerprint its inputs give now. This is what `wan-lora run`
decides once per stage and `wan-lora status` counts, at 5 clips or 30,000, with no provenance
limit. The rules themselves are each asset's, in its AssetSpec (pipeline/asset_table.py); this
snapshot holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from wan_lora_dagster.errors import UserError
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.pipeline import training, training_set
from wan_lora_dagster.pipeline.asset_spec import Partitioning
from wan_lora_dagster.pipeline.asset_table import SPECS, STAGES, upstream
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.decisions import StageDecision
from wan_lora_dagster.pipeline.made_files import damage
from wan_lora_dagster.pipeline.records import UNPARTITIONED, Record

FRESH, UNSYNCED, MISSING = "fresh", "unsynced", "missing"
# What the manifest lists: it is built only while every one of these is fresh.
MANIFEST_INPUTS = tuple(asset for asset in STAGES if asset in upstream("training_set"))


class Expectations:
    """The fingerprint each partition should have now; None where an upstream is not fresh.

    A snapshot: records and freshness are read once per partition, since every downstream
    question asks about the same upstream partitions again. Make a new one after a run.
    """

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.recipe = catalog.project.recipe
        self.records = catalog.records
        self._records: dict[tuple[str, str], Record | None] = {}
        self._fresh: dict[tuple[str, str], bool] = {}
        self._memo: dict = {}

    def fingerprint(self, asset: str, key: str = UNPARTITIONED) -> str | None:
        """The asset's fingerprint rule (its AssetSpec's) applied to this snapshot."""
        return SPECS[asset].fingerprint(self, key)

    def memo(self, key, make: Callable[[], Any]) -> Any:
        """What `make` gives, made once per snapshot: what many partitions' rules share (the
        captioner's fingerprint, every caption's state, a clip's version asked by three assets)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def record(self, asset: str, key: str) -> Record | None:
        """The partition's record as this snapshot read it."""
        if (asset, key) not in self._records:
            self._records[asset, key] = self.records.read(asset, key)
        return self._records[asset, key]

    def is_fresh(self, asset: str, key: str = UNPARTITIONED) -> bool:
        if (asset, key) not in self._fresh:
            record = self.record(asset, key)
            wanted = self.fingerprint(asset, key)
            fresh = record is not None and wanted is not None and record.fingerprint == wanted
            fresh = fresh and not damage(self.catalog.project.root, record)
            self._fresh[asset, key] = fresh
        return self._fresh[asset, key]

    def remember(self, asset: str, key: str, record: Record | None, fresh: bool) -> None:
        """Take a partition's record and freshness as another process read and checked them
        (pipeline/status_on_cores.py)."""
        self._records[asset, key] = record
        self._fresh[asset, key] = fresh

    def decide(self, asset: str, keys: list[str]) -> StageDecision:
        """Which of `keys` a step makes (stale, inputs fresh), skips (fresh) or leaves (an input
        is not fresh): decided once per stage and handed to the step."""
        make, fresh, blocked = [], [], []
        for key in keys:
            if self.is_fresh(asset, key):
                fresh.append(key)
            elif self.fingerprint(asset, key) is None:
                blocked.append(key)
            else:
                make.append(key)
        return StageDecision(asset, make, fresh, blocked)

    def state(self, asset: str, key: str = UNPARTITIONED) -> str:
        if self.record(asset, key) is None:
            return MISSING
        return FRESH if self.is_fresh(asset, key) else UNSYNCED

    def partitions(self, asset: str) -> list[str]:
        partitioning = SPECS[asset].partitioning
        if partitioning is Partitioning.CLIPS:
            return self.catalog.clip_ids
        if partitioning is Partitioning.STILLS:
            return self.catalog.still_ids
        if partitioning is Partitioning.CHECKPOINTS:
            plan = self.plan
            return list(plan.keys) if plan else []
        return [UNPARTITIONED]

    def fresh_data_version(self, asset: str, key: str = UNPARTITIONED) -> str | None:
        """The partition's data version while it is fresh: what its downstream is made from."""
        return self.record(asset, key).data_version if self.is_fresh(asset, key) else None

    @cached_property
    def manifest_attempt(self) -> tuple[TrainingSetManifest | None, UserError | None]:
        """The manifest the fresh per-clip and per-still caches make, or why there is none."""
        if self.catalog.problems.errors:  # a film or line the user meant is missing from it
            return None, None
        if not all(self.is_fresh(a, key) for a in MANIFEST_INPUTS for key in self.partitions(a)):
            return None, None
        try:
            return training_set.build_manifest(self.catalog, self.recipe, read=self.record), None
        except UserError as error:
            return None, error

    @property
    def manifest(self) -> TrainingSetManifest | None:
        """None while any item's caption or cache is not fresh, or the recipe cannot be fed."""
        return self.manifest_attempt[0]

    def require_manifest(self) -> TrainingSetManifest:
        manifest, error = self.manifest_attempt
        if error:
            raise error
        if manifest is None:
            self.catalog.problems.raise_errors()
            raise UserError(
                "Some clips' or stills' captions or caches are not up to date, so a manifest now "
                "would list stale files. Materialize them first (`wan-lora run` does it in order)."
            )
        return manifest

    @cached_property
    def plan(self) -> training.CheckpointPlan | None:
        report = self.record("dataset_report", UNPARTITIONED)
        if not (self.manifest and report and self.is_fresh("dataset_report")):
            return None
        return training.checkpoint_plan(self.manifest, self.recipe)
