import re

import numpy as np
import pytest
from PIL import Image

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.frames import read_frames, read_image, sample_frames
from wan_lora_dagster.media.synthetic import make_synthetic_film


@pytest.fixture(scope="module")
def small_film(tmp_path_factory):
    """2 s at 8 fps (16 frames), 64x48, two scenes."""
    path = tmp_path_factory.mktemp("frames") / "small.mp4"
    return make_synthetic_film(path, duration=2.0, fps=8, size=(64, 48), num_scenes=2)


def test_all_frames_are_rgb_uint8_in_decode_order(small_film):
    frames = read_frames(small_film)

    assert frames.shape == (16, 48, 64, 3) and frames.dtype == np.uint8


def test_indices_pick_frames_in_the_order_asked(small_film):
    everything = read_frames(small_film)

    picked = read_frames(small_film, [9, 0, 9])

    assert np.array_equal(picked, everything[[9, 0, 9]])


def test_an_index_past_the_end_is_a_media_error_naming_the_file(small_film):
    with pytest.raises(
        MediaError, match=re.escape(f"{small_film}: has no frame 16 (it has 16 frames)")
    ):
        read_frames(small_film, [3, 16])


def test_sampled_frames_are_spread_from_first_to_last(small_film):
    everything = read_frames(small_film)

    images = sample_frames(small_film, 4)

    assert [image.size for image in images] == [(64, 48)] * 4
    for image, position in zip(images, (0, 5, 10, 15), strict=True):
        assert np.array_equal(np.asarray(image), everything[position])
    assert len(sample_frames(small_film, 40)) == 16  # never more frames than the clip has


def test_a_rotated_video_is_read_upright(shared_media):
    assert read_frames(shared_media / "video_90.mov").shape == (3, 568, 320, 3)


def test_a_damaged_video_is_a_media_error_naming_the_file(shared_media):
    film = shared_media / "corrupted.mp4"

    with pytest.raises(MediaError, match=re.escape(f"{film}: cannot decode frame 28")):
        read_frames(film, [40])


def test_read_image_applies_the_exif_orientation(tmp_path):
    path = tmp_path / "phone.jpg"
    landscape = np.zeros((20, 40, 3), dtype=np.uint8)
    landscape[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(landscape).save(path, exif=exif, quality=95)

    pixels = read_image(path)

    assert pixels.shape == (40, 20, 3)
    assert pixels[:20].mean() > 200 and pixels[20:].mean() < 50  # the white half is now on top


def test_read_image_of_a_broken_file_is_a_media_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")

    with pytest.raises(MediaError, match=re.escape(f"{path}: cannot read image")):
        read_image(path)
