"""One image per checkpoint that shows its eval videos side by side.

One row per prompt and seed (and start image, image-to-video), one column per LoRA strength,
each cell the middle frame of its video; image-to-video rows begin with their start image, so
each strength's frames are seen beside the frame they started from. A latent walk is one more
row, its videos in walk order.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from wan_lora_dagster.disk_full import replacing
from wan_lora_dagster.engines.base import SampleVideo
from wan_lora_dagster.media.frames import read_frames, read_image

CELL = 96
LABEL = 14  # pixels above each cell for its label


def contact_sheet(videos: list[SampleVideo], path: Path) -> Path:
    plain = [video for video in videos if video.walk_position is None]
    walk = sorted(
        (video for video in videos if video.walk_position is not None),
        key=lambda video: video.walk_position,
    )
    lead = 1 if any(video.start_image for video in videos) else 0
    strengths = sorted({video.strength for video in plain})
    rows = sorted({_row(video) for video in plain})
    columns = lead + max(len(strengths), len(walk))
    sheet = Image.new("RGB", (CELL * columns, (CELL + LABEL) * (len(rows) + bool(walk))), "white")
    draw = ImageDraw.Draw(sheet)

    def place(image: Image.Image, column: int, row: int, label: str) -> None:
        x, y = column * CELL, row * (CELL + LABEL)
        sheet.paste(image.resize((CELL, CELL)), (x, y + LABEL))
        draw.text((x + 2, y), label, fill="black")

    for video in plain:
        row = rows.index(_row(video))
        place(_middle_frame(video), lead + strengths.index(video.strength), row, _strength(video))
        if video.start_image:
            place(_start_frame(video), 0, row, "start image")
    for column, video in enumerate(walk):
        if video.start_image and column == 0:
            place(_start_frame(video), 0, len(rows), "start image")
        place(_middle_frame(video), lead + column, len(rows), f"walk {video.walk_position:.2f}")
    with replacing(path) as partial:
        sheet.save(partial, format="PNG", optimize=True)
    return path


def _row(video: SampleVideo) -> tuple[str, str, int]:
    return (video.start_image.name if video.start_image else "", video.prompt, video.seed)


def _strength(video: SampleVideo) -> str:
    return f"strength {video.strength:g}"


def _middle_frame(video: SampleVideo) -> Image.Image:
    frames = read_frames(video.path)
    return Image.fromarray(frames[len(frames) // 2])


def _start_frame(video: SampleVideo) -> Image.Image:
    return Image.fromarray(read_image(video.start_image.path))
