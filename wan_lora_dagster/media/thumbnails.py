"""Thumbnail strips: a clip at a glance in the Dagster UI."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.media.probe import display_size, probe_video, upright_scaled

# A 64-colour palette keeps a strip at a few KB: Dagster stores it in metadata and the UI shows
# hundreds of them.
PALETTE_COLOURS = 64


def strip_positions(num_frames: int, count: int) -> list[int]:
    """The indexes of the `count` evenly spaced frames a strip shows, first and last included."""
    positions = np.linspace(0, num_frames - 1, num=min(count, num_frames))
    return positions.round().astype(int).tolist()


class StripFrames:
    """A strip's frames, scaled to `height` pixels high, as `probe_video` decodes them (a
    `FrameWatcher`): the strip costs no decode of its own.

    A cut clip's frame count is known before its decode (`expected_frames`): then only the
    `count` frames the strip shows are converted. Without it every frame is, and the strip's are
    picked once the count is known. Should the decode find another count than expected, `save`
    reads the strip's frames from the clip again.
    """

    def __init__(self, height: int = 72, count: int = 4, expected_frames: int | None = None):
        self.height, self.count = height, count
        self.wanted = (
            None if expected_frames is None else set(strip_positions(expected_frames, count))
        )
        self.frames: dict[int, Image.Image] = {}
        self.seen = 0
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> None:
        if self.wanted is None or self.seen in self.wanted:
            width, height = display_size(frame)
            scaled_width = max(1, round(width * self.height / height))
            rgb = upright_scaled(frame, scaled_width, self.height, "rgb24", self._reformatter)
            self.frames[self.seen] = Image.fromarray(rgb)
        self.seen += 1

    def save(self, out_png: Path, clip: Path | None = None) -> Path:
        """Write the strip's frames side by side; `clip` is read again if they were not seen."""
        positions = strip_positions(self.seen, self.count)
        if not all(position in self.frames for position in positions):
            if clip is None:
                raise ValueError(f"the strip's frames {positions} were not all seen; pass `clip`")
            return thumbnail_strip(clip, out_png, self.count, self.height)
        chosen = [self.frames[position] for position in positions]
        strip = Image.new("RGB", (sum(frame.width for frame in chosen), self.height))
        left = 0
        for frame in chosen:
            strip.paste(frame, (left, 0))
            left += frame.width
        out_png = Path(out_png)
        with replacing(out_png) as partial:
            strip.quantize(colors=PALETTE_COLOURS).save(partial, format="PNG", optimize=True)
        return out_png


def thumbnail_strip(path: Path, out_png: Path, count: int = 4, height: int = 72) -> Path:
    """Write `count` evenly spaced frames of the clip side by side, each `height` pixels high."""
    frames = StripFrames(height, count)
    probe_video(path, watchers=[frames])
    return frames.save(out_png)
