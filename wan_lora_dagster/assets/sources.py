"""Observed sources: the user's films, ranges files, stills and caption files.

Each is observed per clip or still, with a content hash as its version, so that editing one caption
or replacing one film or image marks exactly the affected items unsynced, and touching a file marks
nothing.
"""

import dagster as dg

from wan_lora_dagster.assets.declared import declared
from wan_lora_dagster.assets.partitioned import batch_versions
from wan_lora_dagster.pipeline.asset_spec import AssetSpec
from wan_lora_dagster.pipeline.asset_table import SOURCES
from wan_lora_dagster.resources import ProjectResource

OBSERVE_EVERY_MINUTES = 1


def _observer(spec: AssetSpec) -> dg.SourceAsset:
    arguments = declared(spec.name)

    @dg.observable_source_asset(**arguments, auto_observe_interval_minutes=OBSERVE_EVERY_MINUTES)
    def observe(project: ProjectResource) -> dg.DataVersionsByPartition:
        versions = batch_versions(project.catalog(), arguments["partitions_def"], spec.observe)
        return dg.DataVersionsByPartition({k: dg.DataVersion(v) for k, v in versions.items()})

    return observe


SOURCE_ASSETS = [_observer(spec) for spec in SOURCES]
