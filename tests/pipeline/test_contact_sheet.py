"""The contact sheet: a column per strength, the start image first (I2V), the walk as a row."""

import numpy as np
from PIL import Image

from wan_lora_dagster.engines.base import SampleVideo, StartImage
from wan_lora_dagster.media.video_writer import write_video
from wan_lora_dagster.pipeline.contact_sheet import CELL, LABEL, contact_sheet


def flat_video(path, value: int):
    return write_video(np.full((5, 32, 32, 3), value, dtype=np.uint8), path)


def cell(sheet: Image.Image, column: int, row: int) -> np.ndarray:
    """The middle of a cell (away from scaling at its edges)."""
    x, y = column * CELL + CELL // 2, row * (CELL + LABEL) + LABEL + CELL // 2
    return np.asarray(sheet)[y - 8 : y + 8, x - 8 : x + 8].astype(int)


def test_start_image_then_strengths_then_the_walk_row(tmp_path):
    start = tmp_path / "start.png"
    Image.new("RGB", (32, 32), (250, 20, 20)).save(start)
    image = StartImage("held", start)
    videos = [
        SampleVideo(flat_video(tmp_path / f"s{s}.mp4", v), "p", s, 1, image)
        for s, v in ((0.0, 40), (1.0, 200))
    ]
    videos += [
        SampleVideo(flat_video(tmp_path / f"w{i}.mp4", 60 * i), "p", 1.0, 1, image, i / 2)
        for i in range(3)
    ]

    with Image.open(contact_sheet(videos, tmp_path / "sheet.png")) as sheet:
        sheet = sheet.convert("RGB")
        assert sheet.size == (CELL * 4, (CELL + LABEL) * 2)
        assert np.abs(cell(sheet, 0, 0) - (250, 20, 20)).max() < 8, "the start image leads"
        assert (
            np.abs(cell(sheet, 1, 0) - 40).max() < 8 and np.abs(cell(sheet, 2, 0) - 200).max() < 8
        )
        assert np.abs(cell(sheet, 0, 1) - (250, 20, 20)).max() < 8
        for index in range(3):
            assert np.abs(cell(sheet, 1 + index, 1) - 60 * index).max() < 8, "walk in order"
