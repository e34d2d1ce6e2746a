import av
import imageio_ffmpeg
import numpy as np
import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.cut import (
    CutSettings,
    cut_clip,
    expected_frame_count,
    ffmpeg_cut_command,
)
from wan_lora_dagster.media.ffmpeg import find_ffmpeg
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.media.probe import count_frames


def stream_facts(path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        first = next(container.decode(video))
        return {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "fps": video.average_rate,
            "audio_streams": len(container.streams.audio),
            "rotation": first.rotation,
        }


@pytest.mark.parametrize(("start", "end"), [(1.0, 3.0), (10.25, 12.5), (0.0, 5.0)])
def test_a_cut_has_exactly_duration_times_16_frames_of_h264_yuv420p(
    shared_media, tmp_path, start, end
):
    film = shared_media / "bbb_480p_30s.mp4"

    info = cut_clip(film, start, end, tmp_path / "clip.mp4")

    expected = round((end - start) * 16)
    assert count_frames(info.path) == info.num_frames == expected
    assert (info.width, info.height, info.fps) == (854, 480, 16.0)
    assert info.duration == pytest.approx(expected / 16)
    assert (info.source, info.start, info.end) == (film, start, end)
    assert stream_facts(info.path) == {
        "codec": "h264",
        "pix_fmt": "yuv420p",
        "fps": 16,
        "audio_streams": 0,
        "rotation": 0,
    }
    assert [path.name for path in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary left


def test_a_cut_starts_on_the_exact_source_frame(shared_media, tmp_path):
    film = shared_media / "bbb_480p_30s.mp4"
    clip = read_frames(cut_clip(film, 10.25, 12.5, tmp_path / "clip.mp4").path, [0, 2])
    # 10.25 s is source frame 246 at 24 fps; clip frame 2 (10.375 s) is source frame 249.
    source = read_frames(film, range(245, 251)).astype(int)

    for clip_frame, source_frame in zip(clip, (246, 249), strict=True):
        differences = [np.abs(clip_frame - frame).mean() for frame in source]
        assert int(np.argmin(differences)) + 245 == source_frame


def test_the_command_re_encodes_with_the_fps_filter_and_seeks_before_the_input(tmp_path):
    command = ffmpeg_cut_command(
        tmp_path / "film.mkv", 2.0, 7.0, tmp_path / "clip.mp4", CutSettings(crf=20)
    )

    assert command[0] == "ffmpeg"
    assert {"-nostdin", "-y", "-copyts"} <= set(command)
    assert command[command.index("-loglevel") + 1] == "error"
    assert command.index("-ss") < command.index("-i")
    assert command[command.index("-map") + 1] == "[out0]"  # the video branch alone: no audio
    graph = command[command.index("-filter_complex") + 1]
    assert "trim=start=2.000000,setpts=PTS-2.000000/TB,fps=16" in graph
    assert "-r" not in command and "copy" not in command
    assert command[command.index("-c:v") + 1] == "libx264"
    assert command[command.index("-pix_fmt") + 1] == "yuv420p"
    assert command[command.index("-crf") + 1] == "20"
    assert command[command.index("-frames:v") + 1] == "80"
    assert command[-1] == str(tmp_path / "clip.mp4")


def test_one_ffmpeg_decodes_and_encodes_on_one_thread_unless_told_otherwise(tmp_path):
    film, clip = tmp_path / "film.mkv", tmp_path / "clip.mp4"

    one = ffmpeg_cut_command(film, 2.0, 7.0, clip, CutSettings())
    own_choice = ffmpeg_cut_command(film, 2.0, 7.0, clip, CutSettings(threads=None))

    threads = [index for index, arg in enumerate(one) if arg == "-threads"]
    assert [one[index + 1] for index in threads] == ["1", "1"]
    assert threads[0] < one.index("-i") < threads[1]  # the decoder's, then libx264's
    assert "-threads" not in own_choice
    assert [arg for arg in one if arg not in ("-threads", "1")] == own_choice


def test_a_film_whose_container_says_zero_frames_cuts_correctly(shared_media, tmp_path):
    info = cut_clip(shared_media / "flipping_a_pancake.mkv", 5.333, 10.333, tmp_path / "c.mp4")

    assert count_frames(info.path) == info.num_frames == 80
    assert (info.width, info.height) == (426, 240)


def test_a_rotated_video_comes_out_upright_without_rotation_metadata(shared_media, tmp_path):
    film = shared_media / "video_90.mov"

    info = cut_clip(film, 0.0, 0.1, tmp_path / "clip.mp4")

    frames = read_frames(info.path)
    assert frames.shape == (2, 568, 320, 3)  # stored 568x320, shown 320 wide and 568 high
    assert (info.width, info.height) == (320, 568)
    assert stream_facts(info.path)["rotation"] == 0
    upright_source = read_frames(film, [0]).astype(int)
    assert np.abs(frames[0] - upright_source[0]).mean() < 4  # turned the right way round


def test_cutting_a_damaged_part_is_a_media_error_and_keeps_the_previous_clip(
    shared_media, tmp_path
):
    out_path = tmp_path / "clip.mp4"
    cut_clip(shared_media / "bbb_480p_30s.mp4", 0.0, 0.5, out_path)
    good_bytes = out_path.read_bytes()
    film = shared_media / "corrupted.mp4"

    with pytest.raises(MediaError) as raised:
        cut_clip(film, 3.0, 4.0, out_path)

    message = str(raised.value)
    assert message.startswith(f"cannot cut {film} 00:03.000-00:04.000: ffmpeg failed")
    assert "Invalid" in message  # ffmpeg's own last lines
    assert out_path.read_bytes() == good_bytes
    assert [path.name for path in tmp_path.iterdir()] == ["clip.mp4"]


def test_out_of_order_timestamps_give_a_correct_clip(shared_media, tmp_path):
    info = cut_clip(shared_media / "unordered.mov", 0.0, 0.125, tmp_path / "clip.mp4")

    assert count_frames(info.path) == info.num_frames == 2
    assert (info.width, info.height) == (50, 50)


def test_a_range_shorter_than_one_frame_is_a_media_error(shared_media, tmp_path):
    with pytest.raises(MediaError, match="shorter than one frame at 16 fps"):
        cut_clip(shared_media / "bbb_480p_30s.mp4", 1.0, 1.02, tmp_path / "clip.mp4")


def test_a_missing_ffmpeg_is_a_media_error_and_writes_nothing(shared_media, tmp_path):
    settings = CutSettings(ffmpeg=str(tmp_path / "no-ffmpeg"))

    with pytest.raises(MediaError, match="cannot run ffmpeg"):
        cut_clip(shared_media / "bbb_480p_30s.mp4", 1.0, 2.0, tmp_path / "clip.mp4", settings)

    assert list(tmp_path.iterdir()) == []


def test_find_ffmpeg_prefers_the_configured_binary_then_path_then_imageio(tmp_path, monkeypatch):
    bundled = imageio_ffmpeg.get_ffmpeg_exe()
    assert find_ffmpeg(bundled) == bundled
    with pytest.raises(MediaError, match="is not an executable file or a command on PATH"):
        find_ffmpeg(str(tmp_path / "ffmpeg"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg() == bundled


def test_the_ffmpeg_bundled_with_imageio_cuts_the_same(shared_media, tmp_path):
    settings = CutSettings(ffmpeg=imageio_ffmpeg.get_ffmpeg_exe())

    info = cut_clip(shared_media / "video_90.mov", 0.0, 0.1, tmp_path / "clip.mp4", settings)

    assert read_frames(info.path).shape == (2, 568, 320, 3)
    assert count_frames(info.path) == 2


@pytest.mark.parametrize(("duration", "frames"), [(5.0, 80), (2.25, 36), (0.4, 6), (1 / 32, 1)])
def test_expected_frame_count_rounds_halves_up(duration, frames):
    assert expected_frame_count(duration) == frames
