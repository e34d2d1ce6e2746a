"""Nearby ranges of one film cut by one ffmpeg: one start-up, one seek and one decode for them all.

A plain cut per range pays ffmpeg's start-up (80-100 ms of CPU for Debian's ffmpeg, which loads
some 200 shared libraries) and its seek (decoding from the keyframe before the range, up to a
keyframe interval of frames thrown away). Ranges close together (a scene split into moments,
thousands of short clips over a few films) are cut by one ffmpeg that seeks to the first, decodes
the stretch once and splits it into one filter branch and one encoder per range. A range alone
goes through the same argv with one branch (`ffmpeg_ranges_command`), so each clip is
`cut_clip`'s clip, bit for bit with the same ffmpeg, however the ranges were grouped
(tests/media/test_cut_group.py). benchmarks/clips.py measures what grouping saves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from wan_lora_dagster.disk_full import writing_into
from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.cut import (
    ClipInfo,
    CutSettings,
    RangeCut,
    cut_clip,
    ffmpeg_ranges_command,
    finish_cut,
)
from wan_lora_dagster.media.ffmpeg import run_ffmpeg

# A gap this long between two ranges is decoded and thrown away rather than paying a new ffmpeg
# and a seek: 2 s of 1080p h264 decode cost about what a start-up and an average seek do.
MAX_GAP_SECONDS = 2.0
MAX_RANGES_PER_FFMPEG = 32
# Each range's libx264 encoder stays in memory until its ffmpeg ends: measured 170 MB per
# 1080p range (about 85 bytes per pixel, preset 'fast'). One ffmpeg runs per core, each kept
# under this budget.
ENCODER_BYTES_PER_PIXEL = 85
MEMORY_PER_FFMPEG = 512 * 2**20


def ranges_per_ffmpeg(width: int, height: int) -> int:
    """How many ranges of a film of this size one ffmpeg may cut within its memory budget."""
    fitting = MEMORY_PER_FFMPEG // (ENCODER_BYTES_PER_PIXEL * max(1, width * height))
    return max(1, min(MAX_RANGES_PER_FFMPEG, fitting))


def group_nearby(spans: Sequence[tuple[float, float]], most: int) -> list[list[int]]:
    """The indices of `spans` (start, end) in groups of at most `most`, by start time; a group
    takes the next span while it begins at most MAX_GAP_SECONDS after the group's furthest end."""
    groups: list[list[int]] = []
    reach = -math.inf
    for index in sorted(range(len(spans)), key=lambda index: spans[index][0]):
        start, end = spans[index]
        if not groups or len(groups[-1]) >= most or start > reach + MAX_GAP_SECONDS:
            groups.append([])
            reach = end
        groups[-1].append(index)
        reach = max(reach, end)
    return groups


def cut_clips(cuts: Sequence[RangeCut], settings: CutSettings) -> list[ClipInfo | MediaError]:
    """Each cut's clip (or the MediaError that failed it), in the order of `cuts`, all ranges
    of one film: one ffmpeg for all of them when there are several.

    If that ffmpeg fails, each range is cut on its own, so a damaged part of the film fails only
    the ranges that reach into it, each with its own error. Every clip is written to a temporary
    file and renamed when its check passes, as `cut_clip` does: nothing half-made is left.
    """
    results: dict[int, ClipInfo | MediaError] = {}
    for index, cut in enumerate(cuts):
        try:
            cut.check_length(settings)
        except MediaError as error:
            results[index] = error
    together = [index for index in range(len(cuts)) if index not in results]
    made = _cut_together([cuts[index] for index in together], settings)
    results.update(zip(together, made, strict=True))
    return [results[index] for index in range(len(cuts))]


def _cut_together(cuts: list[RangeCut], settings: CutSettings) -> list[ClipInfo | MediaError]:
    if len(cuts) <= 1:
        return [_cut_alone(cut, settings) for cut in cuts]
    for cut in cuts:
        cut.out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            with writing_into(cuts[0].out_path.parent):
                run_ffmpeg(ffmpeg_group_command(cuts, settings), cuts[0].cannot)
        except MediaError:
            _remove_partials(cuts)
            return [_cut_alone(cut, settings) for cut in cuts]
        return [_finish(cut, settings) for cut in cuts]
    finally:
        _remove_partials(cuts)


def ffmpeg_group_command(cuts: Sequence[RangeCut], settings: CutSettings) -> list[str]:
    """One ffmpeg argv that writes every cut's range (all of one film) to its partial file."""
    ranges = [(cut.start, cut.end, cut.partial) for cut in cuts]
    return ffmpeg_ranges_command(cuts[0].film, ranges, settings)


def _cut_alone(cut: RangeCut, settings: CutSettings) -> ClipInfo | MediaError:
    try:
        return cut_clip(cut.film, cut.start, cut.end, cut.out_path, settings, cut.watchers)
    except MediaError as error:
        return error


def _finish(cut: RangeCut, settings: CutSettings) -> ClipInfo | MediaError:
    try:
        return finish_cut(cut, settings)
    except MediaError as error:
        return error


def _remove_partials(cuts: Sequence[RangeCut]) -> None:
    for cut in cuts:
        cut.partial.unlink(missing_ok=True)
