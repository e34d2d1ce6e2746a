"""Which frame windows of a 16 fps clip become training samples: musubi-tuner's frame extraction.

The rules follow musubi-tuner (commit 30c658c), `dataset/image_video_dataset.py`, `VideoDataset`:
`__init__` rounds target_frames to 4N+1 and turns `uniform` with frame_sample 1 into `head` (which
decodes only the first max(target_frames) frames), and `retrieve_latent_cache_batches` cuts the
windows. A window is always a run of consecutive frames; stride and sample only move its start.
A target longer than the clip is skipped without a word, so `excluded_reason` says it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wan_lora_dagster.recipe.datasets import DatasetSection

VAE_FRAME_STRIDE = 4
FPS = 16


@dataclass(frozen=True)
class FrameWindow:
    """One training sample of a clip: `num_frames` consecutive frames from `start_frame`."""

    start_frame: int
    num_frames: int
    frame_indices: tuple[int, ...]


def round_to_4n_plus_1(frames: int) -> int:
    """Round down to 4N+1 (17 -> 17, 20 -> 17, 16 -> 13), the frame counts the Wan VAE encodes."""
    if frames < 1:
        raise ValueError(f"a frame count must be 1 or more, got {frames}")
    return (frames - 1) // VAE_FRAME_STRIDE * VAE_FRAME_STRIDE + 1


def rounded_target_frames(section: DatasetSection) -> tuple[int, ...]:
    """The section's target_frames as musubi uses them: rounded to 4N+1, unique, ascending."""
    return tuple(sorted({round_to_4n_plus_1(frames) for frames in section.target_frames}))


def extraction_mode(section: DatasetSection) -> str:
    """musubi treats `uniform` with one sample as `head`."""
    if section.frame_extraction == "uniform" and section.frame_sample == 1:
        return "head"
    return section.frame_extraction


def frame_windows(num_frames: int, section: DatasetSection) -> list[FrameWindow]:
    """The windows musubi-tuner caches for a clip of `num_frames` frames (16 fps) in `section`.

    A still gives one window of one frame. Windows with the same start and length are listed once:
    musubi would write the same file twice.
    """
    if section.source == "stills":
        return [_window(0, 1)]
    if num_frames < 1:
        return []
    starts_and_lengths = _EXTRACTORS[extraction_mode(section)](num_frames, section)
    unique = dict.fromkeys((int(start), length) for start, length in starts_and_lengths)
    return [_window(start, length) for start, length in unique]


def excluded_reason(num_frames: int, section: DatasetSection) -> str | None:
    """Why a clip gives no window in `section`, as a sentence for the user; else None."""
    if frame_windows(num_frames, section):
        return None
    if num_frames < 1:
        return f"clip has no frames, so section {section.name} has nothing to train on"
    targets = ", ".join(str(frames) for frames in rounded_target_frames(section))
    return (
        f"clip has {num_frames} frames at {FPS} fps ({num_frames / FPS:.2f} s), shorter than "
        f"every target_frames ({targets}) of section {section.name}; lengthen its range or add "
        f"a target_frames value of {round_to_4n_plus_1(num_frames)} or less"
    )


def _window(start_frame: int, num_frames: int) -> FrameWindow:
    return FrameWindow(start_frame, num_frames, tuple(range(start_frame, start_frame + num_frames)))


def _head(num_frames: int, section: DatasetSection) -> list[tuple[int, int]]:
    # `if frame_count >= target_frame: crop_pos_and_frames.append((0, target_frame))`
    return [(0, target) for target in rounded_target_frames(section) if num_frames >= target]


def _chunk(num_frames: int, section: DatasetSection) -> list[tuple[int, int]]:
    # `for i in range(0, frame_count, target_frame): if i + target_frame <= frame_count: ...`
    return [
        (start, target)
        for target in rounded_target_frames(section)
        for start in range(0, num_frames, target)
        if start + target <= num_frames
    ]


def _slide(num_frames: int, section: DatasetSection) -> list[tuple[int, int]]:
    # `for i in range(0, frame_count - target_frame + 1, self.frame_stride): ...`
    return [
        (start, target)
        for target in rounded_target_frames(section)
        for start in range(0, num_frames - target + 1, section.frame_stride)
    ]


def _uniform(num_frames: int, section: DatasetSection) -> list[tuple[int, int]]:
    # `np.linspace(0, frame_count - target_frame, self.frame_sample, dtype=int)`
    return [
        (start, target)
        for target in rounded_target_frames(section)
        if num_frames >= target
        for start in np.linspace(0, num_frames - target, section.frame_sample, dtype=int)
    ]


def _full(num_frames: int, section: DatasetSection) -> list[tuple[int, int]]:
    # `target_frame = min(frame_count, self.max_frames)`, then rounded to N*4+1
    return [(0, round_to_4n_plus_1(min(num_frames, section.max_frames)))]


_EXTRACTORS = {"head": _head, "chunk": _chunk, "slide": _slide, "uniform": _uniform, "full": _full}
