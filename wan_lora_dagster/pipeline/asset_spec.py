"""What the graph knows of one asset, declared once beside the code that makes it.

Each pipeline module that makes an asset declares its `AssetSpec`; pipeline/asset_table.py puts
them in run order. The Dagster decorators (assets/), `wan-lora status` and `wan-lora run`'s
stages (pipeline/status.py, runner.py), the observed sources and the tests all read that table,
so the graph is written in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.catalog import Catalog
    from wan_lora_dagster.pipeline.status import Expectations

# The pool of the steps that need the accelerator; in the team deployment, also their queue.
GPU_POOL = "gpu"

# The fingerprint a partition should have now, given a snapshot of the project (None while an
# input is not fresh): a partition is fresh exactly when its record holds it.
FingerprintRule = Callable[["Expectations", str], "str | None"]
# An observed source's version per item (clip or still), read from the user's files.
VersionsRule = Callable[["Catalog"], "dict[str, str]"]


class Partitioning(Enum):
    CLIPS = "per clip"
    STILLS = "per still"
    CHECKPOINTS = "per checkpoint"
    NONE = "none"


@dataclass(frozen=True)
class AssetSpec:
    """An asset of the graph: a source the user edits (`observe`) or a step's output
    (`fingerprint`)."""

    name: str
    group: str
    partitioning: Partitioning
    reads: tuple[str, ...] = ()
    fingerprint: FingerprintRule | None = None
    observe: VersionsRule | None = None
    pool: str | None = None  # GPU_POOL: one accelerator step at a time
    # Made again as soon as its inputs change (the UI's automation); False for the long GPU
    # stages, which the retrain schedule or the user starts.
    follows_inputs: bool = True
    # Every partition is made by one resumable run (training saves all its checkpoints), so a
    # stale partition launches the run of them all; False: each stale partition on its own.
    made_in_one_run: bool = False
    description: str = ""

    def __post_init__(self):
        if (self.fingerprint is None) == (self.observe is None):
            raise ValueError(f"asset {self.name}: give either a fingerprint or an observe rule")

    @property
    def is_source(self) -> bool:
        return self.observe is not None

    @property
    def per_item(self) -> bool:
        return self.partitioning in (Partitioning.CLIPS, Partitioning.STILLS)
