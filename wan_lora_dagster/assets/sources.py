"""Observed sources: the user's films, ranges files, stills and caption files.

Each is observed per clip or still, with a content hash as its version, so that editing one caption
or replacing one film or image marks exactly the affected items unsynced, and touching a file marks
nothing.
"""

import dagster as dg

from wan_lora_dagster.assets.partitioned import CLIP_PARTITIONS, STILL_PARTITIONS, batch_versions
from wan_lora_dagster.pipeline import observations
from wan_lora_dagster.resources import ProjectResource

SOURCES_GROUP = "sources"
OBSERVE_EVERY_MINUTES = 1


def _observer(
    name: str,
    versions_of,
    description: str,
    partitions_def: dg.DynamicPartitionsDefinition = CLIP_PARTITIONS,
) -> dg.SourceAsset:
    @dg.observable_source_asset(
        name=name,
        group_name=SOURCES_GROUP,
        partitions_def=partitions_def,
        auto_observe_interval_minutes=OBSERVE_EVERY_MINUTES,
        description=description,
    )
    def observe(project: ProjectResource) -> dg.DataVersionsByPartition:
        versions = batch_versions(project.catalog(), partitions_def, versions_of)
        return dg.DataVersionsByPartition({k: dg.DataVersion(v) for k, v in versions.items()})

    return observe


films = _observer(
    "films",
    observations.film_versions,
    "Source films in films/, per batch of clips: the content hash of the film each clip is cut "
    "from.",
)
clip_ranges = _observer(
    "clip_ranges",
    observations.range_versions,
    "Curated moments in ranges/<film>.txt (START END [name] [# note]), one partition per "
    "batch of clips.",
)
caption_files = _observer(
    "caption_files",
    observations.caption_file_versions,
    "Hand-editable captions/<clip>.txt files; an edit is a new version, a touch is not.",
)
stills = _observer(
    "stills",
    observations.still_versions,
    "High-resolution images in stills/ (png, jpg, webp), one partition per batch of images "
    "(each named by its stem): the content hashes of the images. Observed while a section has "
    "source = 'stills'.",
    STILL_PARTITIONS,
)
still_caption_txt = _observer(
    "still_caption_txt",
    observations.still_caption_file_versions,
    "Hand-written stills/<still>.txt captions; an edit is a new version, a touch is not.",
    STILL_PARTITIONS,
)
SOURCE_ASSETS = [films, clip_ranges, caption_files, stills, still_caption_txt]
