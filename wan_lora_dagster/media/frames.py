"""Decoded frames as numpy arrays, upright, for captioners and the VAE."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from wan_lora_dagster.errors import MediaError


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB array with the display matrix applied (phones record sideways and tag the turn)."""
    array = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns else array


def read_frames(path: Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Frames in decode order as (num_frames, height, width, 3) uint8; `indices` picks some."""
    wanted = None if indices is None else set(indices)
    frames = []
    try:
        with av.open(str(path)) as container:
            for position, frame in enumerate(container.decode(video=0)):
                if wanted is None or position in wanted:
                    frames.append(_upright(frame))
                if wanted is not None and position >= max(wanted, default=-1):
                    break
    except (av.FFmpegError, OSError) as error:
        raise MediaError(f"{path}: cannot decode video frames: {error}") from error
    if not frames:
        raise MediaError(f"{path}: no video frames could be decoded")
    if indices is not None and len(frames) != len(wanted):
        raise MediaError(f"{path}: has no frame {max(wanted)} (decoded {position + 1})")
    by_position = np.stack(frames)
    if indices is None:
        return by_position
    order = {index: row for row, index in enumerate(sorted(wanted))}
    return by_position[[order[index] for index in indices]]


def sample_frames(path: Path, count: int) -> list[Image.Image]:
    """`count` frames evenly spread over the clip, as PIL images for a captioner."""
    frames = read_frames(path)
    positions = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return [Image.fromarray(frames[position]) for position in positions]


def read_image(path: Path) -> np.ndarray:
    """A still as (height, width, 3) uint8 RGB with its EXIF orientation applied."""
    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except OSError as error:
        raise MediaError(f"{path}: cannot read image: {error}") from error
