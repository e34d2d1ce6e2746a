"""Aspect-ratio buckets and the resize into them, as musubi-tuner does it for Wan.

From musubi-tuner (commit 30c658c): `dataset/bucket.py` (`BucketSelector`, with
`RESOLUTION_STEPS_WAN = 16`, and `calculate_bucket_resolution`) and `dataset/media_utils.py`
(`divisible_by`, `resize_image_to_bucket`). One quirk matters for caches: musubi caches video
latents with a `BucketSelector(resolution)` that always buckets and never honours
`bucket_no_upscale`; only image sections use the section's `enable_bucket`/`bucket_no_upscale`.
`bucket_for_section` applies that rule.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from PIL import Image

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.recipe.datasets import DatasetSection

RESOLUTION_STEP = 16


def bucket_resolutions(
    resolution: tuple[int, int], step: int = RESOLUTION_STEP
) -> list[tuple[int, int]]:
    """All (width, height) buckets of area at most width * height of `resolution`, sorted.

    Widths run from half the square side to the square side in `step`s; each bucket and its
    transpose are listed.
    """
    area = resolution[0] * resolution[1]
    square_side = int(math.sqrt(area))
    # musubi starts at 0 for sides under 2 * step and divides by it; start at one step instead.
    smallest = max(_floor_to(square_side // 2, step), step)
    buckets = set()
    for width in range(smallest, square_side + step, step):
        height = _floor_to(area // width, step)
        if height > 0:
            buckets.update({(width, height), (height, width)})
    return sorted(buckets)


def select_bucket(
    width: int,
    height: int,
    resolution: tuple[int, int],
    enable_bucket: bool = True,
    no_upscale: bool = False,
    step: int = RESOLUTION_STEP,
) -> tuple[int, int]:
    """The (width, height) bucket musubi picks for a frame of `width` x `height`.

    With no_upscale, a frame no larger than the bucket area keeps its size, floored to 16.
    Otherwise the bucket with the nearest aspect ratio wins (the first one on a tie).
    """
    if width < 1 or height < 1:
        raise MediaError(f"a frame of {width}x{height} pixels has no picture")
    if not enable_bucket:
        return tuple(resolution)
    if no_upscale and width * height <= resolution[0] * resolution[1]:
        kept = (_floor_to(width, step), _floor_to(height, step))
        if min(kept) == 0:
            raise MediaError(
                f"a {width}x{height} frame is smaller than {step} pixels on a side; "
                "turn bucket_no_upscale off or drop it"
            )
        return kept
    aspect_ratio = width / height
    buckets = bucket_resolutions(resolution, step)
    return min(buckets, key=lambda bucket: abs(bucket[0] / bucket[1] - aspect_ratio))


def bucket_for_section(
    width: int, height: int, section: DatasetSection, step: int = RESOLUTION_STEP
) -> tuple[int, int]:
    """The bucket musubi caches a clip or still of this size in, under `section`.

    step: what bucket sides divide by, 16 except for TI2V-5B (32: its VAE compresses 16x).
    """
    if section.source == "clips":
        return select_bucket(width, height, section.resolution, step=step)
    return select_bucket(
        width, height, section.resolution, section.enable_bucket, section.bucket_no_upscale, step
    )


def resize_to_bucket(frames: np.ndarray, bucket: tuple[int, int]) -> np.ndarray:
    """Scale to cover the bucket, then crop the centre.

    frames: (num_frames, height, width, 3) uint8 -> (num_frames, bucket_height, bucket_width, 3).
    Like musubi: PIL Lanczos when enlarging, OpenCV area interpolation when shrinking, sizes
    rounded half up, crop offsets floored.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (num_frames, height, width, 3) uint8, got {frames.shape}")
    bucket_width, bucket_height = bucket
    height, width = frames.shape[1:3]
    if (width, height) == (bucket_width, bucket_height):
        return frames
    scale = max(bucket_width / width, bucket_height / height)
    scaled_size = (int(width * scale + 0.5), int(height * scale + 0.5))
    left = (scaled_size[0] - bucket_width) // 2
    top = (scaled_size[1] - bucket_height) // 2
    resized = np.empty((len(frames), bucket_height, bucket_width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        scaled = _scale(frame, scaled_size, enlarge=scale > 1)
        resized[index] = scaled[top : top + bucket_height, left : left + bucket_width]
    return resized


def suggest_buckets(
    sizes: Sequence[tuple[int, int]], resolution: tuple[int, int]
) -> list[tuple[int, int]]:
    """Buckets that would keep each clip's aspect ratio: sides divisible by 16, area at most the
    section's. Most used first. sizes: (width, height) of each clip.
    """
    counts = Counter(_aspect_keeping_bucket(size, resolution) for size in sizes)
    return [bucket for bucket, _ in counts.most_common()]


def _aspect_keeping_bucket(size: tuple[int, int], resolution: tuple[int, int]) -> tuple[int, int]:
    """musubi's `calculate_bucket_resolution`: try five widths around the exact one, keep the
    one whose aspect ratio is nearest."""
    area = resolution[0] * resolution[1]
    aspect_ratio = size[0] / size[1]
    first_width = _floor_to(int(math.sqrt(area * aspect_ratio)), RESOLUTION_STEP)
    candidates = []
    for offset in range(-2, 3):
        width = first_width + offset * RESOLUTION_STEP
        if width < RESOLUTION_STEP:
            continue
        height = _floor_to(area // width, RESOLUTION_STEP)
        if height >= RESOLUTION_STEP:
            candidates.append((width, height))
    if not candidates:  # an aspect ratio too extreme for the area: fall back to the nearest bucket
        return select_bucket(*size, resolution)
    return min(candidates, key=lambda bucket: abs(bucket[0] / bucket[1] - aspect_ratio))


def _scale(frame: np.ndarray, size: tuple[int, int], enlarge: bool) -> np.ndarray:
    if enlarge:
        return np.asarray(Image.fromarray(frame).resize(size, Image.LANCZOS))
    import cv2  # here: OpenCV takes ~40 ms to import, which `wan-lora status` need not pay

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _floor_to(value: int, step: int) -> int:
    return value - value % step
