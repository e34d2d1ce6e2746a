"""Thumbnail strips: a clip at a glance in the Dagster UI."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
from PIL import Image

from wan_lora_dagster.media.probe import display_size, probe_video, upright_scaled

# A 64-colour palette keeps a strip at a few KB: Dagster stores it in metadata and the UI shows
# hundreds of them.
PALETTE_COLOURS = 64


class StripFrames:
    """Every frame, scaled to `height` pixels high, as `probe_video` decodes them (a
    `FrameWatcher`): the strip's frames are picked once the count is known, with no second decode.
    """

    def __init__(self, height: int = 72):
        self.height = height
        self.frames: list[Image.Image] = []

    def __call__(self, frame: av.VideoFrame) -> None:
        width, height = display_size(frame)
        scaled_width = max(1, round(width * self.height / height))
        rgb = upright_scaled(frame, scaled_width, self.height, format="rgb24")
        self.frames.append(Image.fromarray(rgb))

    def save(self, out_png: Path, count: int = 4) -> Path:
        """Write `count` evenly spaced frames side by side, first and last included."""
        positions = np.linspace(0, len(self.frames) - 1, num=min(count, len(self.frames)))
        chosen = [self.frames[position] for position in positions.round().astype(int)]
        strip = Image.new("RGB", (sum(frame.width for frame in chosen), self.height))
        left = 0
        for frame in chosen:
            strip.paste(frame, (left, 0))
            left += frame.width
        out_png = Path(out_png)
        out_png.parent.mkdir(parents=True, exist_ok=True)
        partial = out_png.with_name(f".{out_png.stem}.{os.getpid()}.partial.png")
        try:
            strip.quantize(colors=PALETTE_COLOURS).save(partial, format="PNG", optimize=True)
            partial.replace(out_png)
        finally:
            partial.unlink(missing_ok=True)
        return out_png


def thumbnail_strip(path: Path, out_png: Path, count: int = 4, height: int = 72) -> Path:
    """Write `count` evenly spaced frames of the clip side by side, each `height` pixels high."""
    frames = StripFrames(height)
    probe_video(path, watchers=[frames])
    return frames.save(out_png, count)
