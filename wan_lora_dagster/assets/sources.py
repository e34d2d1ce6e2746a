"""Observed sources: the user's films, ranges files and caption files.

Each is observed per clip, with a content hash as its version, so that editing one caption or
replacing one film marks exactly the affected clips unsynced, and touching a file marks nothing.
"""

import dagster as dg

from wan_lora_dagster.assets.partitioned import CLIP_PARTITIONS
from wan_lora_dagster.pipeline import observations
from wan_lora_dagster.resources import ProjectResource

SOURCES_GROUP = "sources"
OBSERVE_EVERY_MINUTES = 1


def _observer(name: str, versions_of, description: str) -> dg.SourceAsset:
    @dg.observable_source_asset(
        name=name,
        group_name=SOURCES_GROUP,
        partitions_def=CLIP_PARTITIONS,
        auto_observe_interval_minutes=OBSERVE_EVERY_MINUTES,
        description=description,
    )
    def observe(project: ProjectResource) -> dg.DataVersionsByPartition:
        versions = versions_of(project.catalog())
        return dg.DataVersionsByPartition({k: dg.DataVersion(v) for k, v in versions.items()})

    return observe


films = _observer(
    "films",
    observations.film_versions,
    "Source films in films/, per clip: the content hash of the film each clip is cut from.",
)
clip_ranges = _observer(
    "clip_ranges",
    observations.range_versions,
    "Curated moments in ranges/<film>.txt (START END [name] [# note]), one partition per clip.",
)
caption_files = _observer(
    "caption_files",
    observations.caption_file_versions,
    "Hand-editable captions/<clip>.txt files; an edit is a new version, a touch is not.",
)
SOURCE_ASSETS = [films, clip_ranges, caption_files]
