"""What `wan-lora run` and `wan-lora status` end with: every problem and warning, each once."""

from __future__ import annotations

from collections.abc import Callable

from wan_lora_dagster.media.ranges import format_time
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.records import Record
from wan_lora_dagster.problems import Problems

ERRORS_MEAN = "their clips are not made, and training waits until they are fixed"


def project_problems(
    catalog: Catalog, read: Callable[[str, str], Record | None] | None = None
) -> Problems:
    """The catalog's problems, and a warning for each clip made across a scene cut.

    `read(asset, item)`: the records as the caller already read them (default: from out/).
    """
    read = read or catalog.records.read
    problems = Problems()
    problems.extend(catalog.problems)
    for clip_range in catalog.ranges:
        record = read("clips", clip_range.clip_id)
        # a record of other times is of an earlier range: its cuts are no longer in the clip
        if not record or (record.start, record.end) != (clip_range.start, clip_range.end):
            continue
        if record.scene_cuts:
            times = ", ".join(format_time(clip_range.start + cut) for cut in record.scene_cuts)
            problems.warning(
                clip_range.ranges_file,
                clip_range.line,
                f"clip {clip_range.clip_id} crosses a scene cut at {times} of the film; "
                "training on it teaches the cut: end the range before it or start after it",
            )
    return problems
