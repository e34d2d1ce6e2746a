"""The Dagster side of the asset table: a decorator's arguments from an asset's spec.

deps, partitions, group, pool and queue come from pipeline/asset_table.py, so the UI's graph is
the one `wan-lora status` and `wan-lora run` read.
"""

from __future__ import annotations

from typing import Any

from wan_lora_dagster.assets.partitioned import (
    CHECKPOINT_PARTITIONS,
    CLIP_PARTITIONS,
    SINGLE_RUN,
    STILL_PARTITIONS,
)
from wan_lora_dagster.assets.queues import GPU_WORK
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, Partitioning
from wan_lora_dagster.pipeline.asset_table import SPECS

PARTITIONS = {
    Partitioning.CLIPS: CLIP_PARTITIONS,
    Partitioning.STILLS: STILL_PARTITIONS,
    Partitioning.CHECKPOINTS: CHECKPOINT_PARTITIONS,
    Partitioning.NONE: None,
}
WORK_OF_POOL = {None: {}, GPU_POOL: GPU_WORK}


def declared(name: str) -> dict[str, Any]:
    """`@dg.asset(**declared(name), ...)`: the asset as its table entry declares it."""
    spec = SPECS[name]
    arguments: dict[str, Any] = {"name": name, "group_name": spec.group}
    if spec.is_source:
        arguments["description"] = spec.description
    else:
        arguments["deps"] = list(spec.reads)
        arguments.update(WORK_OF_POOL[spec.pool])
    partitions = PARTITIONS[spec.partitioning]
    if partitions is not None:
        arguments["partitions_def"] = partitions
        if not spec.is_source:
            # a step makes many partitions (a run takes a range of them)
            arguments["backfill_policy"] = SINGLE_RUN
    return arguments
