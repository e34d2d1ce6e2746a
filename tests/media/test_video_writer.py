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
