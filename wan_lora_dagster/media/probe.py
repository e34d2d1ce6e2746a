"""What a video file is: display size, frame rate, duration, rotation, and (decoded) frame count.

Container frame counts are not trusted (an MKV often says 0, an edited MP4 says too many): the
only frame count reported is one made by decoding every frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from wan_lora_dagster.errors import MediaError

UNREADABLE_HINT = "check that it plays in a video player, or re-encode it with ffmpeg"
# Sees each decoded frame, in order; takes from it what it needs (see upright_scaled).
FrameWatcher = Callable[[av.VideoFrame], None]


@dataclass(frozen=True)
class VideoInfo:
    """A video's first video stream, as a player shows it.

    `width` and `height` are the display size (the stored size turned by `rotation`);
    `rotation` is the clockwise turn in degrees a player applies (the `rotate` tag's
    convention: 90 for a phone held upright); `num_frames` is None unless frames were counted.
    """

    path: Path
    width: int
    height: int
    fps: float
    duration: float
    rotation: int
    num_frames: int | None
    codec: str


def probe_video(
    path: Path,
    count_frames: bool = False,
    watchers: Sequence[FrameWatcher] = (),
    one_thread: bool = False,
) -> VideoInfo:
    """Probe `path` with PyAV, decoding one frame (or all with `count_frames`, or `watchers`).

    `watchers` see every frame of that one decode, so whatever else a caller needs from the frames
    (scene cuts, a thumbnail strip) costs no decode of its own. The duration is the stream's,
    else the container's, else found by decoding. `one_thread`: decode in the caller's thread
    only, for callers that already decode on every core at once. Raises MediaError naming the
    file when it cannot be opened or a frame cannot be decoded.
    """
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = first_video_stream(container, path)
            stream.thread_type = "NONE" if one_thread else "AUTO"
            frames = container.decode(stream)
            first = next(frames, None)
            if first is None:
                raise MediaError(f"{path}: has no decodable video frames; {UNREADABLE_HINT}")
            fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
            duration = _declared_duration(stream, container)
            num_frames = None
            if count_frames or watchers or duration is None:
                num_frames, last = _count_rest(frames, first, path, watchers)
                duration = duration or _decoded_duration(last, fps)
            return _video_info(path, stream, first, fps, duration, num_frames)
    except OSError as error:  # before FFmpegError: PyAV's FileNotFoundError is both
        raise MediaError(f"{path}: cannot open: {error}") from error
    except av.FFmpegError as error:
        raise MediaError(f"{path}: cannot read video: {error}; {UNREADABLE_HINT}") from error


def count_frames(path: Path) -> int:
    """The number of frames in `path`'s first video stream, by decoding every one."""
    return probe_video(path, count_frames=True).num_frames


def first_video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """The stream every media function reads; MediaError naming `path` when there is none."""
    if not container.streams.video:
        raise MediaError(f"{path}: has no video stream")
    return container.streams.video[0]


def _declared_duration(
    stream: av.VideoStream, container: av.container.InputContainer
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decoded_duration(last: av.VideoFrame, fps: float) -> float:
    """The last frame's time plus one frame: for streams that declare no duration."""
    return (last.time or 0.0) + (1 / fps if fps else 0.0)


def _video_info(
    path: Path,
    stream: av.VideoStream,
    first: av.VideoFrame,
    fps: float,
    duration: float,
    num_frames: int | None,
) -> VideoInfo:
    # The display matrix turns counter-clockwise; players and the `rotate` tag count clockwise.
    rotation = round(-first.rotation) % 360
    width, height = display_size(first)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        rotation=rotation,
        num_frames=num_frames,
        codec=stream.codec_context.name,
    )


def upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB array with the display matrix applied (phones record sideways and tag the turn)."""
    return upright_scaled(frame, *display_size(frame), format="rgb24")


def display_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(width, height) as a player shows the frame: the stored size, turned by its rotation."""
    quarter_turned = round(frame.rotation / 90) % 2
    return (frame.height, frame.width) if quarter_turned else (frame.width, frame.height)


def upright_scaled(
    frame: av.VideoFrame,
    width: int,
    height: int,
    format: str,
    reformatter: VideoReformatter | None = None,
) -> np.ndarray:
    """The frame turned upright and scaled to `width` x `height` (upright sides), in `format`.

    One libswscale pass does the colour conversion and the scaling, which costs a fraction of
    converting the whole frame and scaling it after. A caller converting frame after frame passes
    its own `reformatter`, which keeps libswscale's set-up between frames (`frame.reformat`
    builds a new one for each frame). One swscale thread: frames are small, and clips are
    already converted on every core at once. Both leave the pixels as they were and, measured
    on a 640x360 frame scaled to 320x180, cut the conversion's CPU time to a third.
    """
    turns = round(frame.rotation / 90) % 4  # counter-clockwise, as np.rot90 turns
    stored_width, stored_height = (height, width) if turns % 2 else (width, height)
    reformatter = reformatter or VideoReformatter()
    scaled = reformatter.reformat(
        frame, width=stored_width, height=stored_height, format=format, threads=1
    )
    array = scaled.to_ndarray()
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns else array


def _count_rest(
    frames: Iterator[av.VideoFrame],
    first: av.VideoFrame,
    path: Path,
    watchers: Sequence[FrameWatcher],
) -> tuple[int, av.VideoFrame]:
    """Decode the frames after `first`: (frame count including `first`, the last frame)."""
    count, last = 1, first
    _show(first, watchers)
    try:
        for last in frames:
            count += 1
            _show(last, watchers)
    except av.FFmpegError as error:
        raise MediaError(
            f"{path}: decoding fails after frame {count}: {error}; {UNREADABLE_HINT}"
        ) from error
    return count, last


def _show(frame: av.VideoFrame, watchers: Sequence[FrameWatcher]) -> None:
    for watch in watchers:
        watch(frame)
