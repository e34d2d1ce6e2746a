import re

import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.probe import count_frames, probe_video


def test_probe_reports_size_rate_duration_and_decoded_frame_count(shared_media):
    info = probe_video(shared_media / "bbb_480p_30s.mp4", count_frames=True)

    assert (info.width, info.height, info.fps, info.codec) == (854, 480, 24.0, "h264")
    assert info.duration == pytest.approx(30.0)
    assert (info.rotation, info.num_frames) == (0, 720)
    assert probe_video(shared_media / "bbb_480p_30s.mp4").num_frames is None  # not counted


def test_frames_are_counted_by_decoding_when_the_container_says_zero(shared_media):
    film = shared_media / "flipping_a_pancake.mkv"

    assert count_frames(film) == 310
    assert probe_video(film).duration == pytest.approx(10.33, abs=0.1)


def test_a_rotated_video_reports_its_display_size(shared_media):
    info = probe_video(shared_media / "video_90.mov", count_frames=True)

    assert (info.rotation, info.width, info.height, info.num_frames) == (90, 320, 568, 3)


def test_counting_frames_of_a_damaged_file_is_a_media_error_naming_it(shared_media):
    film = shared_media / "corrupted.mp4"
    assert probe_video(film).duration == pytest.approx(5.0)  # the header is fine

    with pytest.raises(MediaError, match="decoding fails after frame 28") as raised:
        probe_video(film, count_frames=True)

    assert str(raised.value).startswith(f"{film}: ")


def test_out_of_order_timestamps_still_count_every_frame(shared_media):
    assert count_frames(shared_media / "unordered.mov") == 4


@pytest.mark.parametrize("content", [b"", b"these are notes, not a video"])
def test_a_file_that_is_not_a_video_is_a_media_error_naming_it(tmp_path, content):
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)

    with pytest.raises(MediaError) as raised:
        probe_video(path)

    assert str(raised.value).startswith(f"{path}: ")


def test_a_missing_file_is_a_media_error_naming_it(tmp_path):
    path = tmp_path / "missing.mp4"

    with pytest.raises(MediaError, match=re.escape(f"{path}: cannot open")):
        probe_video(path)
