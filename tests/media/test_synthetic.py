import hashlib

import numpy as np
import pytest

from wan_lora_dagster.media.frames import read_frames, read_image
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.synthetic import make_synthetic_film, make_synthetic_still


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_default_film_has_the_requested_duration_size_and_rate(shapes_film):
    info = probe_video(shapes_film, count_frames=True)

    assert (info.width, info.height, info.fps, info.codec) == (320, 192, 24.0, "h264")
    assert info.duration == pytest.approx(20.0)
    assert info.num_frames == 480


def test_scenes_have_their_own_colours_and_shapes_move_within_a_scene(tmp_path):
    film = make_synthetic_film(tmp_path / "f.mp4", duration=4.0, fps=8, size=(64, 48), num_scenes=4)
    frames = read_frames(film).astype(int)

    # The most common colour of a frame is its scene's background.
    backgrounds = [tuple(np.median(frame.reshape(-1, 3), axis=0)) for frame in frames]
    assert len(set(backgrounds[::8])) == 4  # one frame from each 1 s scene
    assert backgrounds[0] == backgrounds[7]  # the same scene keeps its background
    assert np.abs(frames[0] - frames[3]).mean() > 1  # but its shapes move


def test_the_same_seed_gives_the_same_file_and_another_seed_another(tmp_path):
    def film(name: str, seed: int):
        return make_synthetic_film(tmp_path / name, duration=1.0, size=(64, 48), seed=seed)

    assert digest(film("a.mp4", 3)) == digest(film("b.mp4", 3))
    assert digest(film("c.mp4", 4)) != digest(tmp_path / "a.mp4")


def test_odd_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="even sides"):
        make_synthetic_film(tmp_path / "f.mp4", size=(65, 48))


def test_a_still_is_a_png_with_shapes_on_a_background(tmp_path):
    path = make_synthetic_still(tmp_path / "stills" / "s.png", size=(96, 64), seed=1)

    pixels = read_image(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixels.shape == (64, 96, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) == 3  # background, circle, square
    assert digest(make_synthetic_still(tmp_path / "again.png", size=(96, 64), seed=1)) == digest(
        path
    )
