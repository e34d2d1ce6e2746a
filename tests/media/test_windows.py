"""Frame windows, worked by hand from musubi-tuner commit 30c658c,
src/musubi_tuner/dataset/image_video_dataset.py, class VideoDataset:

__init__:
    rounded_target_frames = [(f - 1) // self.vae_frame_stride * self.vae_frame_stride + 1 ...]
    rounded_target_frames = list(set(rounded_target_frames)); rounded_target_frames.sort()
    if self.frame_extraction == "uniform" and self.frame_sample == 1: self.frame_extraction = "head"
    if self.frame_extraction == "head":
        self.datasource.set_start_and_end_frame(0, max(self.target_frames))
retrieve_latent_cache_batches:
    head:    if frame_count >= target_frame: crop_pos_and_frames.append((0, target_frame))
    chunk:   for i in range(0, frame_count, target_frame):
                 if i + target_frame <= frame_count: crop_pos_and_frames.append((i, target_frame))
    slide:   if frame_count >= target_frame:
                 for i in range(0, frame_count - target_frame + 1, self.frame_stride): ...
    uniform: if frame_count >= target_frame:
                 frame_indices = np.linspace(0, frame_count - target_frame, self.frame_sample,
                                             dtype=int)
    full:    target_frame = min(frame_count, self.max_frames)
             target_frame = (target_frame - 1) // self.vae_frame_stride * ... + 1
    cropped_video = video[crop_pos : crop_pos + target_frame]
"""

import pytest

from wan_lora_dagster.media.windows import (
    FrameWindow,
    excluded_reason,
    frame_windows,
    round_to_4n_plus_1,
    rounded_target_frames,
)
from wan_lora_dagster.recipe.datasets import DatasetSection

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def _section(**settings) -> DatasetSection:
    return DatasetSection(name="video_0", source="clips", resolution=(384, 208), **settings)


def _starts(num_frames: int, **settings) -> list[tuple[int, int]]:
    return [(w.start_frame, w.num_frames) for w in frame_windows(num_frames, _section(**settings))]


@pytest.mark.parametrize(
    ("frames", "rounded"),
    [(1, 1), (4, 1), (5, 5), (16, 13), (17, 17), (20, 17), (45, 45), (48, 45), (81, 81)],
)
def test_target_frames_round_down_to_4n_plus_1(frames, rounded):
    assert round_to_4n_plus_1(frames) == rounded


def test_rounded_targets_are_unique_and_ascending():
    assert rounded_target_frames(_section(target_frames=(33, 20, 17, 16, 1))) == (1, 13, 17, 33)
    # 16 and 20 are cached as 13- and 17-frame windows
    assert _starts(40, target_frames=(20, 16)) == [(0, 13), (0, 17)]


def test_zero_frames_cannot_be_rounded():
    with pytest.raises(ValueError, match="1 or more"):
        round_to_4n_plus_1(0)


def test_head_takes_each_target_from_frame_0_that_fits():
    # 40 frames, targets 1, 13, 25, 45: 45 > 40 is skipped
    assert _starts(40, target_frames=(1, 13, 25, 45)) == [(0, 1), (0, 13), (0, 25)]


def test_chunk_cuts_back_to_back_windows_and_drops_the_remainder():
    # target 9: i in 0, 9, 18, 27, 36 -> 36 + 9 = 45 > 40 dropped;
    # target 13: i in 0, 13, 26, 39 -> 39 + 13 = 52 > 40 dropped
    assert _starts(40, target_frames=(9, 13), frame_extraction="chunk") == [
        (0, 9),
        (9, 9),
        (18, 9),
        (27, 9),
        (0, 13),
        (13, 13),
        (26, 13),
    ]


def test_slide_moves_by_frame_stride_and_reads_consecutive_frames():
    # range(0, 40 - 25 + 1, 5) = 0, 5, 10, 15
    windows = frame_windows(
        40, _section(target_frames=(25,), frame_extraction="slide", frame_stride=5)
    )
    assert [w.start_frame for w in windows] == [0, 5, 10, 15]
    assert windows[-1] == FrameWindow(15, 25, tuple(range(15, 40)))


def test_uniform_spreads_frame_sample_starts_truncating_like_numpy():
    # np.linspace(0, 45 - 17, 4, dtype=int): 0, 9.33, 18.67, 28 -> 0, 9, 18, 28
    settings = {"target_frames": (17,), "frame_extraction": "uniform", "frame_sample": 4}
    assert _starts(45, **settings) == [(0, 17), (9, 17), (18, 17), (28, 17)]


def test_uniform_starts_that_coincide_make_one_window():
    # np.linspace(0, 1, 4, dtype=int) = 0, 0, 0, 1: musubi writes the 0 file three times
    settings = {"target_frames": (17,), "frame_extraction": "uniform", "frame_sample": 4}
    assert _starts(18, **settings) == [(0, 17), (1, 17)]


def test_uniform_with_one_sample_is_head():
    settings = {"target_frames": (13, 25), "frame_extraction": "uniform", "frame_sample": 1}
    assert _starts(40, **settings) == [(0, 13), (0, 25)]


@pytest.mark.parametrize(
    ("num_frames", "max_frames", "window"),
    [(100, 81, (0, 81)), (70, 129, (0, 69)), (3, 129, (0, 1)), (200, 60, (0, 57))],
)
def test_full_takes_everything_up_to_max_frames_rounded(num_frames, max_frames, window):
    # target_frames play no part in full extraction
    settings = {"target_frames": (17,), "frame_extraction": "full", "max_frames": max_frames}
    assert _starts(num_frames, **settings) == [window]


def test_a_still_is_one_frame():
    still = DatasetSection(name="stills_1", source="stills", resolution=(512, 512))
    assert frame_windows(1, still) == [FrameWindow(0, 1, (0,))]
    assert excluded_reason(1, still) is None


@pytest.mark.parametrize("extraction", ["head", "chunk", "slide", "uniform"])
def test_a_clip_shorter_than_every_target_gets_no_window_and_a_reason(extraction):
    section = _section(target_frames=(17, 33), frame_extraction=extraction, frame_sample=3)
    assert frame_windows(12, section) == []
    assert excluded_reason(12, section) == (
        "clip has 12 frames at 16 fps (0.75 s), shorter than every target_frames (17, 33) of "
        "section video_0; lengthen its range or add a target_frames value of 9 or less"
    )


def test_a_clip_long_enough_for_one_target_is_not_excluded():
    section = _section(target_frames=(17, 33))
    assert excluded_reason(20, section) is None
    assert _starts(20, target_frames=(17, 33)) == [(0, 17)]


def test_an_empty_clip_is_excluded_even_in_full_mode():
    section = _section(frame_extraction="full")
    assert frame_windows(0, section) == []
    assert "no frames" in excluded_reason(0, section)
