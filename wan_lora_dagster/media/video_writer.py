"""Write frames to an H.264 mp4 that every player, browser and ComfyUI opens (yuv420p)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.ffmpeg import find_ffmpeg, run_ffmpeg

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
    """The frames through ffmpeg's libx264 on one thread, as clips are encoded (media.cut).

    PyAV's libx264 gave the same frames other bytes now and then (a frame's rate control went
    another way in about one encode in thirty, on one or many threads), so an eval video of the
    same checkpoint, seed and strength was not the same file twice; the command line's was the
    same file in every one of hundreds of encodes.
    """
    _, height, width, _ = frames.shape
    command = [
        find_ffmpeg(),
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps)),
        *("-i", "-", "-c:v", "libx264", "-threads", "1", "-preset", "medium", "-crf", str(crf)),
        *("-pix_fmt", "yuv420p", "-fflags", "+bitexact", "-map_metadata", "-1"),
        *("-f", "mp4", str(path)),
    ]
    run_ffmpeg(command, f"{path}: cannot encode the video", advice="", frames=frames.tobytes())
