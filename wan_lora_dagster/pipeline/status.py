"""Which partitions are fresh, unsynced or missing, computed from the project's files alone.

Every asset's fingerprint is a function of its inputs' data versions, so a partition is fresh
exactly when its record holds the fingerprint its inputs give now. This is what `wan-lora run`
recomputes and `wan-lora status` counts, at 5 clips or 30,000, with no provenance limit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from wan_lora_dagster.captioning.backends import CaptionerSettings
from wan_lora_dagster.captioning.store import CaptionState, CaptionStore
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.media.cut import CutSettings
from wan_lora_dagster.pipeline import caches, dataset, evaluation, stills, training
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.items import STILLS
from wan_lora_dagster.pipeline.made_files import damage
from wan_lora_dagster.pipeline.records import UNPARTITIONED
from wan_lora_dagster.project import fingerprint

PER_CLIP_ASSETS = ("clips", "captions", "text_cache", "latent_cache")
PER_STILL_ASSETS = STILLS.assets
TRAINING_ASSETS = ("training_set", "dataset_report")
PER_CHECKPOINT_ASSETS = ("lora_checkpoints", "eval_videos")
ASSET_ORDER = (
    *PER_CLIP_ASSETS,
    *PER_STILL_ASSETS,
    *TRAINING_ASSETS,
    *PER_CHECKPOINT_ASSETS,
    "best_lora",
)
FRESH, UNSYNCED, MISSING = "fresh", "unsynced", "missing"


class Expectations:
    """The fingerprint each partition should have now; None where an upstream is not fresh.

    A snapshot: records and freshness are read once per partition, since every downstream
    question asks about the same upstream partitions again. Make a new one after a run.
    """

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.recipe = catalog.project.recipe
        self.records = catalog.records
        self._records: dict[tuple[str, str], dict | None] = {}
        self._fresh: dict[tuple[str, str], bool] = {}
        self._clip_versions: dict[str, str] = {}
        self._latent_fingerprints: dict[str, Callable[[str], str]] = {}

    def fingerprint(self, asset: str, key: str = UNPARTITIONED) -> str | None:
        return getattr(self, f"_{asset}")(key)

    def record(self, asset: str, key: str) -> dict | None:
        """The partition's record as this snapshot read it."""
        if (asset, key) not in self._records:
            self._records[asset, key] = self.records.read(asset, key)
        return self._records[asset, key]

    def is_fresh(self, asset: str, key: str = UNPARTITIONED) -> bool:
        if (asset, key) not in self._fresh:
            record = self.record(asset, key)
            wanted = self.fingerprint(asset, key)
            fresh = record is not None and wanted is not None and record["fingerprint"] == wanted
            fresh = fresh and not damage(self.catalog.project.root, record)
            self._fresh[asset, key] = fresh
        return self._fresh[asset, key]

    def remember(self, asset: str, key: str, record: dict | None, fresh: bool) -> None:
        """Take a partition's record and freshness as another process read and checked them
        (pipeline/status_on_cores.py)."""
        self._records[asset, key] = record
        self._fresh[asset, key] = fresh

    def split_fresh(self, asset: str, keys: list[str]) -> tuple[list[str], list[str]]:
        """(stale, fresh) partitions of `keys`: a step makes the stale ones, skips the fresh."""
        fresh = [key for key in keys if self.is_fresh(asset, key)]
        fresh_set = set(fresh)
        return [key for key in keys if key not in fresh_set], fresh

    def state(self, asset: str, key: str = UNPARTITIONED) -> str:
        if self.record(asset, key) is None:
            return MISSING
        return FRESH if self.is_fresh(asset, key) else UNSYNCED

    def partitions(self, asset: str) -> list[str]:
        if asset in PER_CLIP_ASSETS:
            return self.catalog.clip_ids
        if asset in PER_STILL_ASSETS:
            return self.catalog.still_ids
        if asset in PER_CHECKPOINT_ASSETS:
            plan = self.plan
            return list(plan.keys) if plan else []
        return [UNPARTITIONED]

    def _fresh_data_version(self, asset: str, key: str) -> str | None:
        return self.record(asset, key)["data_version"] if self.is_fresh(asset, key) else None

    def _clips(self, clip_id: str) -> str:
        # asked for by clips, captions and latent_cache alike
        if clip_id not in self._clip_versions:
            self._clip_versions[clip_id] = dataset.clip_fingerprint(
                self.catalog, clip_id, CutSettings()
            )
        return self._clip_versions[clip_id]

    @cached_property
    def _captioner(self) -> CaptionerSettings:
        project = self.catalog.project
        return dataset.captioner_settings(project, self.recipe.captions, device="cpu")

    @cached_property
    def _clip_captions(self) -> tuple[CaptionStates, str]:
        """The clips' captions, and the captioner's fingerprint (taken once: it looks at every
        file of the model's folder)."""
        store = dataset.caption_store(self.catalog.project)
        states = CaptionStates(self.catalog, store, self.catalog.clip_ids)
        return states, self._captioner.fingerprint()

    @cached_property
    def _still_captions_of(self) -> tuple[CaptionStates, str]:
        store = stills.still_caption_store(self.catalog.project)
        captioner = stills.still_captioner(self._captioner).fingerprint()
        return CaptionStates(self.catalog, store, self.catalog.still_ids), captioner

    def _captions(self, clip_id: str) -> str:
        states, captioner = self._clip_captions
        return self._caption(states.of(clip_id), self._clips(clip_id), captioner)

    def _still_captions(self, still_id: str) -> str:
        states, captioner = self._still_captions_of
        media_version = self.catalog.still_hashes[still_id]
        return self._caption(states.of(still_id), media_version, captioner)

    def _caption(self, state: CaptionState, media_version: str, captioner: str) -> str:
        return dataset.caption_fingerprint(state, media_version, self.recipe.captions, captioner)

    def _text_cache(self, clip_id: str) -> str | None:
        return self._text_of("captions", clip_id)

    def _still_text_cache(self, still_id: str) -> str | None:
        return self._text_of("still_captions", still_id)

    def _text_of(self, caption_asset: str, item_id: str) -> str | None:
        caption_version = self._fresh_data_version(caption_asset, item_id)
        if caption_version is None:
            return None
        return self._text_fingerprint(caption_version)

    @cached_property
    def _text_fingerprint(self):
        return caches.text_fingerprinter(self.recipe.training)

    def _latent_cache(self, clip_id: str) -> str:
        return self._latent_of("clips", self._clips(clip_id))

    def _still_latent_cache(self, still_id: str) -> str:
        return self._latent_of("stills", self.catalog.still_hashes[still_id])

    def _latent_of(self, source: str, media_version: str) -> str:
        if source not in self._latent_fingerprints:
            sections = self.recipe.sections_for(source)
            self._latent_fingerprints[source] = caches.latent_fingerprinter(
                sections, self.recipe.training
            )
        return self._latent_fingerprints[source](media_version)

    @cached_property
    def _manifest_attempt(self) -> tuple[TrainingSetManifest | None, UserError | None]:
        """The manifest the fresh per-clip and per-still caches make, or why there is none."""
        per_item = (*PER_CLIP_ASSETS, *PER_STILL_ASSETS)
        if self.catalog.problems.errors:  # a film or line the user meant is missing from it
            return None, None
        if not all(self.is_fresh(a, key) for a in per_item for key in self.partitions(a)):
            return None, None
        try:
            return training.build_manifest(self.catalog, self.recipe, read=self.record), None
        except UserError as error:
            return None, error

    @property
    def manifest(self) -> TrainingSetManifest | None:
        """None while any item's caption or cache is not fresh, or the recipe cannot be fed."""
        return self._manifest_attempt[0]

    def require_manifest(self) -> TrainingSetManifest:
        manifest, error = self._manifest_attempt
        if error:
            raise error
        if manifest is None:
            self.catalog.problems.raise_errors()
            raise UserError(
                "Some clips' or stills' captions or caches are not up to date, so a manifest now "
                "would list stale files. Materialize them first (`wan-lora run` does it in order)."
            )
        return manifest

    def _training_set(self, _key: str) -> str | None:
        manifest, error = self._manifest_attempt
        if error:
            return fingerprint("unbuildable", str(error))  # stale and ready: the step says why
        return manifest.version if manifest else None

    def _dataset_report(self, _key: str) -> str | None:
        version = self._fresh_data_version("training_set", UNPARTITIONED)
        return version and fingerprint("dataset_report", training.LORA_CODE_VERSION, version)

    @cached_property
    def plan(self) -> training.CheckpointPlan | None:
        report = self.record("dataset_report", UNPARTITIONED)
        if not (self.manifest and report and self.is_fresh("dataset_report")):
            return None
        return training.checkpoint_plan(self.manifest, self.recipe)

    def _lora_checkpoints(self, key: str) -> str | None:
        plan = self.plan
        return fingerprint("lora_checkpoints", plan.train_id, key) if plan else None

    def _eval_videos(self, key: str) -> str | None:
        checkpoint_version = self._fresh_data_version("lora_checkpoints", key)
        return checkpoint_version and evaluation.eval_fingerprint(
            checkpoint_version, self.catalog.project
        )

    def _best_lora(self, _key: str) -> str | None:
        plan = self.plan
        if plan is None:
            return None
        versions = [self._fresh_data_version("eval_videos", key) for key in plan.keys]
        if None in versions:
            return None
        return evaluation.best_fingerprint(versions, self.recipe)


class CaptionStates:
    """Every item's caption state, read at once (each folder listed once, so a hand caption costs
    no failed open of a captioner record) and shared with the sync of the same catalog."""

    def __init__(self, catalog: Catalog, store: CaptionStore, item_ids: list[str]):
        self.store = store
        self.states = catalog.caption_states(store, item_ids)

    def of(self, item_id: str) -> CaptionState:
        state = self.states.get(item_id)
        return state if state is not None else self.store.state(item_id)


def summarize(catalog: Catalog) -> dict[str, dict[str, int]]:
    """Per asset: how many partitions are fresh, unsynced and missing."""
    expectations = Expectations(catalog)
    summary = {}
    for asset in ASSET_ORDER:
        counts = {FRESH: 0, UNSYNCED: 0, MISSING: 0}
        for key in expectations.partitions(asset):
            counts[expectations.state(asset, key)] += 1
        summary[asset] = counts
    return summary
