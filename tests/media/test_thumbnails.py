import numpy as np
from PIL import Image

from wan_lora_dagster.media.cut import cut_clip, expected_frame_count
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.thumbnails import StripFrames, thumbnail_strip


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


def _pixels(png):
    return np.asarray(Image.open(png).convert("RGB"))


def test_a_strip_watching_a_clip_of_the_expected_length_converts_only_its_four_frames(
    shapes_film, tmp_path
):
    clip = cut_clip(shapes_film, 3.5, 7.0, tmp_path / "clip.mp4")  # 56 frames, a cut inside
    every_frame = thumbnail_strip(clip.path, tmp_path / "every.png")
    strip = StripFrames(expected_frames=expected_frame_count(3.5))

    probe_video(clip.path, watchers=[strip])
    only_four = strip.save(tmp_path / "four.png", clip=clip.path)

    assert sorted(strip.frames) == [0, 18, 37, 55]
    assert np.array_equal(_pixels(only_four), _pixels(every_frame))


def test_a_clip_shorter_than_expected_still_gets_the_strip_of_its_own_frames(shapes_film, tmp_path):
    clip = cut_clip(shapes_film, 3.5, 7.0, tmp_path / "clip.mp4")
    every_frame = thumbnail_strip(clip.path, tmp_path / "every.png")
    strip = StripFrames(expected_frames=80)  # the decode finds 56

    probe_video(clip.path, watchers=[strip])
    read_again = strip.save(tmp_path / "again.png", clip=clip.path)

    assert np.array_equal(_pixels(read_again), _pixels(every_frame))
