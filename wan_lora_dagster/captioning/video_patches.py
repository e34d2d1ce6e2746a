"""A clip's frames as Qwen-VL video input: resized, normalised and cut into vision patches.

This is the arithmetic of transformers' Qwen2-VL/Qwen3-VL video processors, which need
torchvision: frames resized so that both sides divide by the patch size times the merge size,
scaled to [0, 1] and normalised, the last frame repeated to fill the last pair of frames, then
cut into (temporal_patch_size x patch_size x patch_size) patches in the merge order the vision
tower reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

# Frames are shrunk to at most this many pixels (about 256 vision tokens per frame pair for
# Qwen2-VL): a full-HD frame would cost ten times as many tokens and tell the model little more.
MAX_PIXELS_PER_FRAME = 448 * 448


@dataclass(frozen=True)
class VideoPatches:
    """pixel_values: (grid_t * grid_h * grid_w, channels * temporal * patch * patch) float32;
    grid_thw: (3,) the patch grid: frame pairs, rows, columns."""

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor


@dataclass(frozen=True)
class VideoPatcher:
    """The video settings of one model, read from its image processor."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    min_pixels: int
    max_pixels: int

    @classmethod
    def of(cls, image_processor) -> VideoPatcher:
        size = image_processor.size  # in pixels per frame, min and max
        return cls(
            patch_size=image_processor.patch_size,
            merge_size=image_processor.merge_size,
            temporal_patch_size=image_processor.temporal_patch_size,
            image_mean=tuple(image_processor.image_mean),
            image_std=tuple(image_processor.image_std),
            min_pixels=size.shortest_edge,
            max_pixels=min(size.longest_edge, MAX_PIXELS_PER_FRAME),
        )

    def patches(self, frames: list[Image.Image]) -> VideoPatches:
        """`frames` (time order, all of the first frame's size or resized to it) as patches."""
        first = frames[0]
        height, width = smart_resize(
            first.height,
            first.width,
            factor=self.patch_size * self.merge_size,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )
        video = np.stack(
            [
                np.asarray(
                    frame.convert("RGB").resize((width, height), Image.Resampling.BICUBIC),
                    dtype=np.float32,
                )
                for frame in frames
            ]
        )
        video = (video / 255.0 - np.array(self.image_mean, np.float32)) / np.array(
            self.image_std, np.float32
        )
        missing = -len(video) % self.temporal_patch_size
        video = np.concatenate([video, np.repeat(video[-1:], missing, axis=0)])
        return self._cut(torch.from_numpy(video).permute(0, 3, 1, 2))

    def _cut(self, video: torch.Tensor) -> VideoPatches:
        """(frames, channels, height, width) -> patches in the vision tower's merge order."""
        frames, channels, height, width = video.shape
        patch, merge, temporal = self.patch_size, self.merge_size, self.temporal_patch_size
        grid_t, grid_h, grid_w = frames // temporal, height // patch, width // patch
        patches = video.reshape(
            grid_t,
            temporal,
            channels,
            grid_h // merge,
            merge,
            patch,
            grid_w // merge,
            merge,
            patch,
        ).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        flat = patches.reshape(grid_t * grid_h * grid_w, channels * temporal * patch * patch)
        return VideoPatches(flat.contiguous(), torch.tensor([grid_t, grid_h, grid_w]))
