"""Hard cuts inside a clip: a clip that crosses a cut teaches the LoRA to jump between shots."""

from __future__ import annotations

from pathlib import Path

import av
from scenedetect import ContentDetector, VideoOpenFailure, detect

from wan_lora_dagster.errors import MediaError


def detect_hard_cuts(path: Path, threshold: float = 27.0, min_scene_frames: int = 4) -> list[float]:
    """Seconds from the start of `path` where a new shot begins (PySceneDetect ContentDetector).

    `threshold` is ContentDetector's (mean change of hue, saturation and brightness between
    frames, 0-255); cuts closer than `min_scene_frames` frames to the previous one are ignored.
    """
    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)
    try:
        # OpenCV, not PyAV: scenedetect's PyAV backend resets libav's global log callback, after
        # which every later PyAV encode in the process prints x264's statistics to stderr.
        scenes = detect(str(path), detector, backend="opencv")
    except (VideoOpenFailure, av.FFmpegError, OSError) as error:
        raise MediaError(f"{path}: cannot look for scene cuts: {error}") from error
    return [round(start.seconds, 3) for start, _ in scenes[1:]]
