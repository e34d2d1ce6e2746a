import av
import numpy as np
import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.video_writer import write_video


def gradient_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    rows = np.linspace(0, 255, height)[None, :, None, None]
    columns = np.linspace(0, 255, width)[None, None, :, None]
    frames = np.broadcast_to((rows + columns) / 2, (num_frames, height, width, 3))
    return frames.astype(np.uint8)


def test_writes_h264_yuv420p_at_16_fps_that_decodes_to_the_frames(tmp_path):
    frames = gradient_frames(9, 32, 48)

    path = write_video(frames, tmp_path / "out" / "clip.mp4")

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert stream.average_rate == 16
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 4  # lossy, but the same picture
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temporary left behind


def test_odd_sizes_are_padded_to_even(tmp_path):
    path = write_video(gradient_frames(2, 31, 45), tmp_path / "odd.mp4")

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (46, 32)


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((4, 8, 8), np.uint8),
        np.zeros((2, 8, 8, 3), np.float32),
        np.zeros((0, 8, 8, 3), np.uint8),
    ],
)
def test_frames_of_the_wrong_shape_or_type_are_refused_naming_the_file(tmp_path, frames):
    with pytest.raises(MediaError, match=r"bad\.mp4"):
        write_video(frames, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def moving_pattern(num_frames: int = 9, height: int = 48, width: int = 64) -> np.ndarray:
    """Waves moving across a demo-sized frame: frames on which PyAV's libx264 wrote other bytes
    about once in thirty encodes."""
    y, x = np.mgrid[0:height, 0:width]
    t = np.arange(num_frames)[:, None, None]
    red = 128 + 100 * np.sin(x / 7 + t * 0.6) * np.cos(y / 5 - t * 0.3)
    green = 128 + 90 * np.sin((x + y) / 9 - t * 0.4)
    blue = 128 + 80 * np.cos(x / 4 - y / 11 + t * 0.5)
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def test_the_same_frames_are_the_same_file_every_time(tmp_path):
    """An eval video of one checkpoint, seed and strength is the same file in every run."""
    frames = moving_pattern()
    written = {write_video(frames, tmp_path / f"{index}.mp4").read_bytes() for index in range(80)}
    assert len(written) == 1
