"""A poster for every card: the graph's `previews` poster of a clip where it is made and
current, else a small picture of the item's first frame, made on first ask.

The studio's own posters are derived data: they live under out/studio/posters/ and are made
again when the clip or still is newer than its poster.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from wan_lora_dagster.media.frames import read_frames, read_image
from wan_lora_dagster.pipeline.preview import preview_paths
from wan_lora_dagster.project import Project

POSTER_SIZE = (320, 320)  # at most, aspect kept: a card shows it about 240 pixels wide
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def poster_picture(media: Path) -> np.ndarray:
    """What a poster shows: a clip's first frame, or the still itself."""
    if media.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(media)
    return read_frames(media, [0])[0]


def poster(project: Project, item_id: str, media: Path) -> Path:
    """The item's poster: the graph's, else one made now if it is missing or older than
    `media`."""
    made, _ = preview_paths(project, item_id)
    if _current(made, media):
        return made
    path = project.out("studio", "posters", f"{item_id}.jpg")
    if _current(path, media):
        return path
    picture = Image.fromarray(poster_picture(media))
    picture.thumbnail(POSTER_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.jpg")
    try:
        picture.save(partial, format="JPEG", quality=85)
        partial.replace(path)  # two requests at once: each writes its own, one wins
    finally:
        partial.unlink(missing_ok=True)
    return path


def _current(poster_file: Path, media: Path) -> bool:
    return poster_file.exists() and poster_file.stat().st_mtime >= media.stat().st_mtime
