"""Cut a moment out of a film, frame-accurately, resampled to the 16 fps Wan 2.1 trains at."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.disk_full import writing_into
from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.ffmpeg import run_ffmpeg
from wan_lora_dagster.media.probe import FrameWatcher, probe_video
from wan_lora_dagster.media.ranges import format_time


@dataclass(frozen=True)
class CutSettings:
    """How clips are encoded: frame rate, libx264 quality and speed, the ffmpeg binary, and the
    threads one ffmpeg decodes and encodes with (None: ffmpeg's own choice)."""

    fps: int = 16
    crf: int = 14
    preset: str = "fast"
    ffmpeg: str = "ffmpeg"
    threads: int | None = 1


@dataclass(frozen=True)
class ClipInfo:
    """A cut clip: `num_frames` counted by decoding it; `duration` is num_frames / fps."""

    path: Path
    num_frames: int
    duration: float
    width: int
    height: int
    fps: float
    source: Path
    start: float
    end: float


def expected_frame_count(duration: float, fps: int = 16) -> int:
    """Frames in a clip of `duration` seconds at `fps`: duration * fps rounded, halves up."""
    return math.floor(duration * fps + 0.5)


def ffmpeg_cut_command(
    film: Path, start: float, end: float, out_path: Path, settings: CutSettings
) -> list[str]:
    """The ffmpeg argv that writes seconds `start` to `end` of `film` to `out_path` (an mp4):
    `ffmpeg_ranges_command` with one range. `cut_clip` passes a temporary `out_path` and renames
    it when the result is checked."""
    return ffmpeg_ranges_command(film, [(start, end, out_path)], settings)


def ffmpeg_ranges_command(
    film: Path, ranges: Sequence[tuple[float, float, Path]], settings: CutSettings
) -> list[str]:
    """The ffmpeg argv that writes each (start, end, out_path) range of `film` to its mp4.

    One argv for one range or many, so a clip's bytes never depend on the ranges cut beside it:
    - `-ss` before `-i` seeks to the keyframe before the earliest start. `-copyts -start_at_zero`
      keep every frame's own timestamp from the film's start and `-noaccurate_seek` leaves the
      dropping of the frames before a range to its `trim`: each range's frames then get the
      same timestamps wherever the seek landed. (ffmpeg's accurate seek instead shifts
      timestamps by the seek point, rounded in the stream's time base, and a range cut with an
      earlier neighbour came out a source frame off in about one range of twenty.)
    - `split` hands each decoded frame to a branch per range, whose `trim` keeps the frames
      from the range's start on and whose `setpts` moves that start to 0.
    - The `fps` filter resamples by timestamp, keeping the frame nearest each 1/16 s tick (`-r`
      would drop and duplicate frames at the muxer instead); `-frames:v` stops at exactly
      `expected_frame_count` frames, so every clip of a duration has the same length.
    - ffmpeg's default autorotation turns phone footage upright before the filters, and the turned
      output carries no rotation tag (`-autorotate` is not passed: ffmpeg 5 wants a value after
      it, ffmpeg 7 refuses one); `scale` makes square pixels and even sides, which yuv420p needs.
    - `-xerror` makes a decoding error fatal: ffmpeg would otherwise patch over a damaged part
      with smeared frames and exit 0, and those frames would go into training.
    - `-threads` (before `-i` for the decoder, after it for libx264), by default 1: the stage
      cuts clips on every core at once, one ffmpeg per core; ffmpeg's own thread pools then
      only compete for the same cores (benchmarks/clips.py prints both ways).
    """
    branches = [f"[0:v:0]split={len(ranges)}" + "".join(f"[in{i}]" for i in range(len(ranges)))]
    outputs: list[str] = []
    for index, (start, end, out_path) in enumerate(ranges):
        branches.append(
            f"[in{index}]trim=start={start:.6f},setpts=PTS-{start:.6f}/TB,"
            f"{resample_filters(settings)}[out{index}]"
        )
        outputs += ["-map", f"[out{index}]"]
        outputs += ffmpeg_output_arguments(
            expected_frame_count(end - start, settings.fps), out_path, settings
        )
    return [
        *ffmpeg_input_arguments(film, min(start for start, _, _ in ranges), settings),
        *("-filter_complex", ";".join(branches)),
        *outputs,
    ]


def ffmpeg_input_arguments(film: Path, start: float, settings: CutSettings) -> list[str]:
    """ffmpeg, its quiet and strict options, and `film` opened at the keyframe before `start`
    seconds, with the film's own timestamps."""
    return [
        settings.ffmpeg,
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-xerror"),
        *("-copyts", "-start_at_zero", "-noaccurate_seek"),
        *(*_threads(settings), "-ss", f"{start:.6f}", "-i", str(film)),
    ]


def resample_filters(settings: CutSettings) -> str:
    """16 fps by timestamp, square pixels and even sides."""
    return f"fps={settings.fps},scale=trunc(iw*sar/2)*2:trunc(ih/2)*2,setsar=1"


def ffmpeg_output_arguments(num_frames: int, out_path: Path, settings: CutSettings) -> list[str]:
    """An output of `num_frames` h264 yuv420p frames, without the film's metadata or chapters."""
    threads = _threads(settings)
    return [
        *("-map_metadata", "-1", "-map_chapters", "-1", "-frames:v", str(num_frames)),
        *("-c:v", "libx264", *threads, "-preset", settings.preset, "-crf", str(settings.crf)),
        *("-pix_fmt", "yuv420p", "-f", "mp4", str(out_path)),
    ]


def _threads(settings: CutSettings) -> tuple[str, ...]:
    return () if settings.threads is None else ("-threads", str(settings.threads))


@dataclass(frozen=True)
class RangeCut:
    """Seconds `start` to `end` of `film`, to be cut to `out_path`; `watchers` see each frame of
    the decode that checks the cut."""

    film: Path
    start: float
    end: float
    out_path: Path
    watchers: Sequence[FrameWatcher] = ()

    @property
    def cannot(self) -> str:
        """The start of every error message about this cut."""
        return f"cannot cut {self.film} {format_time(self.start)}-{format_time(self.end)}"

    @property
    def partial(self) -> Path:
        """Where the clip is written before it is checked: a hidden name beside `out_path`."""
        out_path = self.out_path
        return out_path.with_name(f".{out_path.stem}.{os.getpid()}.partial{out_path.suffix}")

    def num_frames(self, settings: CutSettings) -> int:
        return expected_frame_count(self.end - self.start, settings.fps)

    def check_length(self, settings: CutSettings) -> None:
        if self.num_frames(settings) < 1:
            raise MediaError(f"{self.cannot}: shorter than one frame at {settings.fps} fps")


def cut_clip(
    film: Path,
    start: float,
    end: float,
    out_path: Path,
    settings: CutSettings = CutSettings(),
    watchers: Sequence[FrameWatcher] = (),
) -> ClipInfo:
    """Cut seconds `start` to `end` of `film` to `out_path` (h264 yuv420p mp4, no audio).

    The clip is written to a temporary file, decoded to count its frames (`watchers` see each
    frame of that decode), and only then renamed to `out_path`: a failed cut leaves a previous
    good clip there untouched. Raises MediaError naming the film and the range, with ffmpeg's
    last error lines.
    """
    cut = RangeCut(Path(film), start, end, Path(out_path), watchers)
    cut.check_length(settings)
    cut.out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with writing_into(cut.out_path.parent):  # a full disk named as such, not ffmpeg's log
            command = ffmpeg_cut_command(cut.film, start, end, cut.partial, settings)
            run_ffmpeg(command, cut.cannot)
        return finish_cut(cut, settings)
    finally:
        cut.partial.unlink(missing_ok=True)


def finish_cut(cut: RangeCut, settings: CutSettings) -> ClipInfo:
    """Decode the written partial file (counting its frames; the cut's watchers see each one)
    and only then rename it to the cut's `out_path`. Raises MediaError when ffmpeg wrote no
    readable frames."""
    try:
        # Clips are cut and checked on every core at once (pipeline/parallel.py), so the
        # decoder's own threads only add their set-up: one thread took about 25% less CPU
        # per 2-second 640x360 clip.
        info = probe_video(cut.partial, count_frames=True, watchers=cut.watchers, one_thread=True)
    except MediaError as error:
        raise MediaError(f"{cut.cannot}: ffmpeg wrote no readable frames ({error})") from error
    cut.partial.replace(cut.out_path)
    return ClipInfo(
        path=cut.out_path,
        num_frames=info.num_frames,
        duration=info.num_frames / settings.fps,
        width=info.width,
        height=info.height,
        fps=info.fps,
        source=cut.film,
        start=cut.start,
        end=cut.end,
    )
