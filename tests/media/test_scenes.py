import re

import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.cut import cut_clip
from wan_lora_dagster.media.scenes import detect_hard_cuts


def test_a_four_scene_film_has_three_cuts_at_the_scene_boundaries(shapes_film, shapes_scene_starts):
    cuts = detect_hard_cuts(shapes_film)

    assert cuts == pytest.approx(shapes_scene_starts, abs=1 / 24)


def test_a_clip_inside_one_scene_has_no_cut(shapes_film, tmp_path):
    clip = cut_clip(shapes_film, 6.0, 9.0, tmp_path / "inside.mp4")

    assert detect_hard_cuts(clip.path) == []


def test_a_clip_across_a_boundary_reports_the_cut_from_the_clip_start(shapes_film, tmp_path):
    clip = cut_clip(shapes_film, 3.5, 7.0, tmp_path / "across.mp4")

    assert detect_hard_cuts(clip.path) == pytest.approx([1.5], abs=1 / 16)


def test_a_real_film_with_cuts(shared_media, tmp_path):
    # Big Buck Bunny cuts from the opening titles to the meadow at about 11.9 s.
    clip = cut_clip(shared_media / "bbb_480p_30s.mp4", 10.0, 13.0, tmp_path / "bbb.mp4")

    assert detect_hard_cuts(clip.path) == pytest.approx([1.875], abs=1 / 16)


def test_a_file_that_is_not_a_video_is_a_media_error(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")

    with pytest.raises(MediaError, match=re.escape(f"{path}: cannot")):
        detect_hard_cuts(path)
