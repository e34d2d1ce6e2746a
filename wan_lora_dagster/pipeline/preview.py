"""Per clip, what a person looks at: a poster frame and a small preview video.

The studio's caption cards and Dagster's clip pages show the poster; a card plays the preview
(a few KB at 160 pixels high, where the 16 fps clip may be megabytes at full size). Both are
made from the clip alone, so they are remade exactly when the clip is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.media.cut import CutSettings
from wan_lora_dagster.media.ffmpeg import run_ffmpeg
from wan_lora_dagster.media.frames import sample_frames
from wan_lora_dagster.pipeline.asset_spec import AssetSpec, Partitioning
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.pipeline.records import Record, record_of
from wan_lora_dagster.project import Project

if TYPE_CHECKING:
    from wan_lora_dagster.pipeline.status import Expectations

PREVIEW_CODE_VERSION = "1"
PREVIEW_HEIGHT = 160  # pixels: a card of the studio's grid
POSTER_WIDTH = 320


@record_of("previews")
@dataclass(frozen=True, kw_only=True)
class PreviewRecord(Record):
    poster: str  # out/previews/<clip>.png, the clip's middle frame
    video: str  # out/previews/<clip>.mp4, the clip at PREVIEW_HEIGHT pixels high

    def made_paths(self) -> list[str]:
        return [self.poster, self.video]


def preview_paths(project: Project, clip_id: str) -> tuple[Path, Path]:
    """Where a clip's poster and preview video are written."""
    folder = project.out("previews")
    return folder / f"{clip_id}.png", folder / f"{clip_id}.mp4"


def make_preview(catalog: Catalog, clip_id: str, settings: CutSettings) -> PreviewRecord:
    """Write the clip's poster and preview video (each through a hidden partial file renamed
    when whole), and record them. Raises MediaError when the clip is not made."""
    made = catalog.records.read("clips", clip_id)
    if made is None:
        raise MediaError(f"clip {clip_id} is not made yet: its preview waits for it")
    clip = catalog.project.root / made.path
    clip_version = made.data_version
    poster, video = preview_paths(catalog.project, clip_id)
    _write_poster(clip, poster)
    _write_preview_video(clip, video, settings)
    version = preview_fingerprint(clip_version)
    root = catalog.project.root
    record = PreviewRecord(
        fingerprint=version,
        data_version=version,
        poster=str(poster.relative_to(root)),
        video=str(video.relative_to(root)),
    )
    return catalog.records.write("previews", clip_id, record)


def _write_poster(clip: Path, poster: Path) -> None:
    frames = sample_frames(clip, 3)  # first, middle, last: the middle one is the poster
    image = frames[len(frames) // 2]
    image.thumbnail((POSTER_WIDTH, POSTER_WIDTH))
    with replacing(poster) as partial:
        image.save(partial, format="PNG")


def _write_preview_video(clip: Path, video: Path, settings: CutSettings) -> None:
    with replacing(video) as partial:
        command = [
            *(settings.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
            *("-threads", "1", "-i", str(clip), "-an", "-vf", f"scale=-2:{PREVIEW_HEIGHT}"),
            *("-c:v", "libx264", "-threads", "1", "-preset", "fast", "-crf", "28"),
            *("-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(partial)),
        ]
        run_ffmpeg(command, f"cannot make the preview of {clip}")


def preview_fingerprint(clip_version: str) -> str:
    return fingerprint("previews", PREVIEW_CODE_VERSION, clip_version)


def _preview_rule(snapshot: Expectations, clip_id: str) -> str | None:
    """A preview is made from its clip alone, once the clip is fresh."""
    clip_version = snapshot.fresh_data_version("clips", clip_id)
    return None if clip_version is None else preview_fingerprint(clip_version)


PREVIEWS = AssetSpec(
    "previews",
    "dataset",
    Partitioning.CLIPS,
    ("clips",),
    _preview_rule,
    description="Per clip: a poster frame (PNG) and a small preview video for the studio and "
    "the UI, made from the 16 fps clip.",
)
