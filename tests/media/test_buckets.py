"""Buckets worked by hand from musubi-tuner commit 30c658c:

dataset/bucket.py:BucketSelector.__init__ (enable_bucket):
    sqrt_size = int(math.sqrt(self.bucket_area)); min_size = divisible_by(sqrt_size // 2, 16)
    for w in range(min_size, sqrt_size + 16, 16):
        h = divisible_by(self.bucket_area // w, 16); add (w, h) and (h, w)
BucketSelector.get_bucket_resolution:
    if self.no_upscale and area <= self.bucket_area: return divisible_by(w, 16), divisible_by(h, 16)
    bucket_id = np.abs(self.aspect_ratios - aspect_ratio).argmin()
dataset/media_utils.py:resize_image_to_bucket:
    scale = max(bucket_width / image_width, bucket_height / image_height)
    image_width = int(image_width * scale + 0.5) ... PIL LANCZOS if scale > 1 else cv2.INTER_AREA
    crop_left = (image_width - bucket_width) // 2; crop_top = (image_height - bucket_height) // 2
"""

import numpy as np
import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.buckets import (
    bucket_for_section,
    bucket_resolutions,
    resize_to_bucket,
    select_bucket,
    suggest_buckets,
)
from wan_lora_dagster.recipe.datasets import DatasetSection

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

RESOLUTION = (384, 208)  # area 79872, int(sqrt) = 282, widths 128, 144, ..., 288


def test_bucket_list_at_384x208():
    buckets = bucket_resolutions(RESOLUTION)
    # w = 208: h = divisible_by(79872 // 208 = 384) -> (208, 384) and its transpose
    assert (384, 208) in buckets and (208, 384) in buckets
    # w = 128: 79872 // 128 = 624; w = 272: 79872 // 272 = 293 -> 288, paired with w = 288 -> 272
    assert buckets[0] == (128, 624) and buckets[-1] == (624, 128)
    assert len(buckets) == 20  # 11 widths, two of them transposes of each other
    assert all(w % 16 == 0 and h % 16 == 0 and w * h <= 79872 for w, h in buckets)
    assert buckets == sorted(buckets)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((1920, 1080), (384, 208)),  # 16:9 = 1.778: 384/208 = 1.846 beats 352/224 = 1.571
        ((1080, 1920), (208, 384)),  # 9:16
        ((1000, 1000), (272, 288)),  # 1:1: 272/288 = 0.944 is nearer than 288/272 = 1.059
        ((640, 480), (320, 240)),  # 4:3 exactly
    ],
)
def test_select_bucket_by_nearest_aspect_ratio(size, bucket):
    assert select_bucket(*size, RESOLUTION) == bucket


def test_without_bucketing_every_frame_goes_to_the_resolution():
    assert select_bucket(1080, 1920, RESOLUTION, enable_bucket=False) == RESOLUTION


def test_no_upscale_keeps_small_frames_floored_to_16_and_buckets_large_ones():
    assert select_bucket(200, 100, RESOLUTION, no_upscale=True) == (192, 96)
    assert select_bucket(1920, 1080, RESOLUTION, no_upscale=True) == (384, 208)


def test_no_upscale_refuses_a_frame_under_16_pixels():
    with pytest.raises(MediaError, match="smaller than 16 pixels"):
        select_bucket(200, 10, RESOLUTION, no_upscale=True)


def test_clips_always_bucket_like_musubis_video_cacher_but_stills_follow_the_section():
    # VideoDataset.retrieve_latent_cache_batches: BucketSelector(self.resolution, architecture=...)
    # i.e. enable_bucket=True, no_upscale=False whatever the section says
    settings = {"resolution": RESOLUTION, "enable_bucket": False, "bucket_no_upscale": True}
    clips = DatasetSection(name="v", source="clips", **settings)
    stills = DatasetSection(name="s", source="stills", **settings)
    assert bucket_for_section(1080, 1920, clips) == (208, 384)
    assert bucket_for_section(1080, 1920, stills) == RESOLUTION
    no_upscale = DatasetSection(
        name="s", source="stills", resolution=RESOLUTION, bucket_no_upscale=True
    )
    assert bucket_for_section(200, 100, no_upscale) == (192, 96)


def test_resize_covers_the_bucket_and_crops_the_centre():
    frames = np.random.default_rng(0).integers(0, 256, (3, 360, 640, 3), dtype=np.uint8)
    resized = resize_to_bucket(frames, (384, 208))
    assert resized.shape == (3, 208, 384, 3) and resized.dtype == np.uint8


def test_resize_at_scale_one_is_a_pure_centre_crop():
    # 400x208 into 384x208: scale = max(0.96, 1.0) = 1, crop_left = (400 - 384) // 2 = 8
    frames = np.random.default_rng(1).integers(0, 256, (2, 208, 400, 3), dtype=np.uint8)
    assert np.array_equal(resize_to_bucket(frames, (384, 208)), frames[:, :, 8:392])


def test_resize_enlarges_small_frames():
    frames = np.zeros((1, 100, 180, 3), dtype=np.uint8)
    frames[:, :, :90] = 255  # left half white
    resized = resize_to_bucket(frames, (384, 208))
    assert resized.shape == (1, 208, 384, 3)
    assert resized[0, 100, 10].min() > 250 and resized[0, 100, 370].max() < 5


def test_resize_returns_frames_already_at_the_bucket_unchanged():
    frames = np.zeros((1, 208, 384, 3), dtype=np.uint8)
    assert resize_to_bucket(frames, (384, 208)) is frames


def test_resize_refuses_anything_but_rgb_uint8_frames():
    with pytest.raises(ValueError, match="uint8"):
        resize_to_bucket(np.zeros((1, 20, 20, 3), dtype=np.float32), (16, 16))
    with pytest.raises(ValueError, match="num_frames, height, width, 3"):
        resize_to_bucket(np.zeros((20, 20, 3), dtype=np.uint8), (16, 16))


def test_suggestions_keep_each_aspect_ratio_most_common_first():
    sizes = [(1920, 1080)] * 3 + [(1080, 1920)]
    # 16:9: widths 336..400 tried, 368x208 = 1.769 is nearest; 9:16: 208x384 = 0.542
    assert suggest_buckets(sizes, RESOLUTION) == [(368, 208), (208, 384)]


@pytest.mark.parametrize("size", [(1920, 800), (720, 576), (1440, 1080), (10000, 10)])
def test_suggestions_are_divisible_by_16_and_within_the_area(size):
    [(width, height)] = suggest_buckets([size], (256, 256))
    assert width % 16 == 0 and height % 16 == 0 and 0 < width * height <= 256 * 256


def test_no_clips_no_suggestions():
    assert suggest_buckets([], RESOLUTION) == []
