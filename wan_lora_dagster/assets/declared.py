"""The Dagster side of the asset table: a decorator's arguments from an asset's spec.

deps, partitions, group, pool and queue come from pipeline/asset_table.py, so the UI's graph is
the one `wan-lora status` and `wan-lora run` read. An asset a studio page shows links that page,
at the address `wan-lora ui` started the studio on (known only then: it passes it in
$WAN_LORA_STUDIO_URL to the Dagster process it starts, which reads it as definitions load).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from wan_lora_dagster.assets.partitioned import (
    CHECKPOINT_PARTITIONS,
    CLIP_PARTITIONS,
    SINGLE_RUN,
    STILL_PARTITIONS,
)
from wan_lora_dagster.assets.queues import GPU_WORK
from wan_lora_dagster.pipeline.asset_spec import GPU_POOL, Partitioning
from wan_lora_dagster.pipeline.asset_table import SPECS, STUDIO_PAGE

# the studio's address (scheme, host and port; never its token, which Dagster's pages would show)
STUDIO_ENV = "WAN_LORA_STUDIO_URL"

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
    if link := studio_link(name):
        arguments["metadata"] = {"studio": link}
    partitions = PARTITIONS[spec.partitioning]
    if partitions is not None:
        arguments["partitions_def"] = partitions
        if not spec.is_source:
            # a step makes many partitions (a run takes a range of them)
            arguments["backfill_policy"] = SINGLE_RUN
    return arguments


def studio_link(name: str) -> dg.UrlMetadataValue | None:
    """The studio page where the asset is worked on by hand, while `wan-lora ui` serves one."""
    studio = os.environ.get(STUDIO_ENV, "").rstrip("/")
    page = STUDIO_PAGE.get(name)
    return dg.MetadataValue.url(f"{studio}/{page}") if studio and page else None
