"""Thumbnail strips: a clip at a glance in the Dagster UI."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from wan_lora_dagster.media.frames import sample_frames

# A 64-colour palette keeps a strip at a few KB: Dagster stores it in metadata and the UI shows
# hundreds of them.
PALETTE_COLOURS = 64


def thumbnail_strip(path: Path, out_png: Path, count: int = 4, height: int = 72) -> Path:
    """Write `count` evenly spaced frames of the clip side by side, each `height` pixels high."""
    frames = [_scaled(frame, height) for frame in sample_frames(path, count)]
    strip = Image.new("RGB", (sum(frame.width for frame in frames), height))
    left = 0
    for frame in frames:
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


def _scaled(frame: Image.Image, height: int) -> Image.Image:
    width = max(1, round(frame.width * height / frame.height))
    return frame.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
