import numpy as np
from PIL import Image

from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.media.thumbnails import thumbnail_strip


def test_a_strip_shows_evenly_spaced_frames_side_by_side_in_a_few_kb(shapes_film, tmp_path):
    out_png = thumbnail_strip(shapes_film, tmp_path / "thumbs" / "shapes.png", count=4, height=72)

    strip = np.asarray(Image.open(out_png).convert("RGB")).astype(int)
    assert strip.shape == (72, 4 * 120, 3)  # 320x192 frames scaled to 120x72
    assert out_png.stat().st_size < 10_000
    # Frames 0, 160, 319 and 479 are one in each of the film's four scenes.
    sources = read_frames(shapes_film, [0, 160, 319, 479]).astype(int)
    for panel, source in enumerate(sources):
        shown = strip[:, panel * 120 : (panel + 1) * 120]
        background = np.median(source.reshape(-1, 3), axis=0)
        assert np.abs(np.median(shown.reshape(-1, 3), axis=0) - background).max() < 16
    assert [path.name for path in out_png.parent.iterdir()] == ["shapes.png"]
