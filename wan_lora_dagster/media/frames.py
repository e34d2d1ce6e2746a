"""Decoded frames as numpy arrays, upright, for captioners and the VAE."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
from PIL import ExifTags, Image, ImageOps

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.probe import (
    UNREADABLE_HINT,
    count_frames,
    first_video_stream,
    upright_rgb,
)

# EXIF orientations that turn the picture by a quarter (exif_transpose swaps width and height).
QUARTER_TURNS = (5, 6, 7, 8)
# What PIL raises for a damaged, truncated, unknown or oversized (decompression bomb) image.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_frames(path: Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Frames as (num_frames, height, width, 3) uint8 RGB, upright, in decode order.

    `indices` picks frames by decode position (repeats and any order allowed); decoding stops
    after the last one needed. Raises MediaError naming the file when a frame cannot be decoded
    or an index is past the end.
    """
    wanted = None if indices is None else set(indices)
    if wanted is not None and (not wanted or min(wanted) < 0):
        raise ValueError(f"frame indices must be non-negative and not empty, got {indices}")
    by_position, num_decoded = _decode(Path(path), wanted)
    if wanted is not None and not wanted <= by_position.keys():
        missing = min(wanted - by_position.keys())
        raise MediaError(f"{path}: has no frame {missing} (it has {num_decoded} frames)")
    order = range(num_decoded) if indices is None else indices
    return np.stack([by_position[position] for position in order])


def sample_frames(path: Path, count: int) -> list[Image.Image]:
    """`count` frames evenly spread over a clip, first and last included, as PIL images.

    Decodes the clip twice (to count, then to pick), so only `count` full frames are in memory.
    """
    num_frames = count_frames(path)
    positions = np.linspace(0, num_frames - 1, num=min(count, num_frames)).round().astype(int)
    return [Image.fromarray(frame) for frame in read_frames(path, positions.tolist())]


def read_image(path: Path) -> np.ndarray:
    """A still as (height, width, 3) uint8 RGB with its EXIF orientation applied."""
    with _open_image(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def image_size(path: Path) -> tuple[int, int]:
    """A still's upright (width, height), as read_image gives it, from its header alone."""
    with _open_image(path) as image:
        width, height = image.size
        turned = image.getexif().get(ExifTags.Base.Orientation) in QUARTER_TURNS
    return (height, width) if turned else (width, height)


@contextmanager
def _open_image(path: Path) -> Iterator[Image.Image]:
    """The image, with PIL's errors while it is open turned into a MediaError naming the file."""
    try:
        with Image.open(path) as image:
            yield image
    except IMAGE_ERRORS as error:
        raise MediaError(f"{path}: cannot read image: {error}") from error


def _decode(path: Path, wanted: set[int] | None) -> tuple[dict[int, np.ndarray], int]:
    """(frames by decode position, number of frames decoded), stopping after the last wanted."""
    by_position: dict[int, np.ndarray] = {}
    last_wanted = None if wanted is None else max(wanted)
    num_decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = first_video_stream(container, path)
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if wanted is None or num_decoded in wanted:
                    by_position[num_decoded] = upright_rgb(frame)
                num_decoded += 1
                if num_decoded - 1 == last_wanted:
                    break
    except OSError as error:  # before FFmpegError: PyAV's FileNotFoundError is both
        raise MediaError(f"{path}: cannot open: {error}") from error
    except av.FFmpegError as error:
        raise MediaError(
            f"{path}: cannot decode frame {num_decoded}: {error}; {UNREADABLE_HINT}"
        ) from error
    if not num_decoded:
        raise MediaError(f"{path}: has no decodable video frames; {UNREADABLE_HINT}")
    return by_position, num_decoded
