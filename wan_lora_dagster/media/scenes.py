"""Hard cuts inside a clip: a clip that crosses a cut teaches the LoRA to jump between shots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import av
from av.video.reformatter import VideoReformatter

from wan_lora_dagster.media.probe import display_size, probe_video, upright_scaled

if TYPE_CHECKING:
    from scenedetect import FrameTimecode


class HardCutFinder:
    """PySceneDetect's ContentDetector fed frame by frame: a `FrameWatcher` of `probe_video`, so
    looking for cuts shares the decode that counts a clip's frames.

    `threshold` is ContentDetector's (mean change of hue, saturation and brightness between
    frames, 0-255); cuts closer than `min_scene_frames` frames to the previous one are ignored.
    Frames are downscaled to the width scenedetect's own SceneManager picks.
    """

    def __init__(self, fps: float, threshold: float = 27.0, min_scene_frames: int = 4):
        # imported here: scenedetect and OpenCV take ~0.2 s to import, which every command that
        # imports the clips stage (`wan-lora status` too) would pay without cutting anything
        from scenedetect import ContentDetector, FrameTimecode
        from scenedetect.scene_manager import compute_downscale_factor

        self._timecode, self._downscale_factor = FrameTimecode, compute_downscale_factor
        self.fps = float(fps)  # scenedetect refuses an int rate
        self.detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)
        self.cut_frames: list[FrameTimecode] = []
        self._position = 0
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> None:
        width, height = display_size(frame)
        factor = self._downscale_factor(width)
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        bgr = upright_scaled(frame, *size, format="bgr24", reformatter=self._reformatter)
        timecode = self._timecode(self._position, self.fps)
        self.cut_frames += self.detector.process_frame(timecode, bgr)
        self._position += 1

    @property
    def cuts(self) -> list[float]:
        """Seconds from the clip's start where a new shot begins."""
        return [round(cut.seconds, 3) for cut in self.cut_frames if cut.frame_num > 0]


def detect_hard_cuts(path: Path, threshold: float = 27.0, min_scene_frames: int = 4) -> list[float]:
    """Seconds from the start of `path` where a new shot begins (see HardCutFinder)."""
    finder = HardCutFinder(probe_video(path).fps, threshold, min_scene_frames)
    probe_video(path, watchers=[finder])
    return finder.cuts
