"""Write frames to an H.264 mp4 that every player, browser and ComfyUI opens (yuv420p)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.errors import MediaError

DEFAULT_FPS = 16  # Wan 2.1 generates and trains at 16 fps


def write_video(frames: np.ndarray, path: Path, fps: int = DEFAULT_FPS, crf: int = 18) -> Path:
    """Encode `frames` (num_frames, height, width, 3) uint8 RGB to `path` as H.264 yuv420p.

    yuv420p needs even sides, so an odd height or width is padded by repeating the last row or
    column. The file appears atomically: a cancelled write never leaves a truncated mp4 behind.
    """
    frames = _even_sized(_checked(frames, path))
    path = Path(path)
    with replacing(path) as partial:
        _encode(frames, partial, fps, crf)
    return path


def _checked(frames: np.ndarray, path: Path) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise MediaError(f"{path}: expected frames of shape (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise MediaError(f"{path}: expected uint8 frames, got {frames.dtype}")
    return frames


def _even_sized(frames: np.ndarray) -> np.ndarray:
    _, height, width, _ = frames.shape
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames


def _encode(frames: np.ndarray, path: Path, fps: int, crf: int) -> None:
    _, height, width, _ = frames.shape
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # x264 prints its statistics at INFO level on every close unless told otherwise.
        stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "log-level=error"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
