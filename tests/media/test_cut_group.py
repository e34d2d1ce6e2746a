"""One ffmpeg for nearby ranges: the same clips as one ffmpeg per range, and no clip lost."""

import pytest

from wan_lora_dagster.errors import MediaError
from wan_lora_dagster.media.cut import ClipInfo, CutSettings, RangeCut, cut_clip
from wan_lora_dagster.media.cut_group import (
    MAX_RANGES_PER_FFMPEG,
    cut_clips,
    ffmpeg_group_command,
    group_nearby,
    ranges_per_ffmpeg,
)
from wan_lora_dagster.media.scenes import HardCutFinder

# 10.25 s starts on a source frame exactly (246 at 24 fps); two ranges overlap, one repeats.
BBB_RANGES = [(10.25, 12.5), (1.0, 3.0), (2.5, 4.0), (13.0, 13.5), (1.0, 3.0)]
# Starts between the synthetic film's frames: with ffmpeg's accurate seek (timestamps shifted by
# the seek point) all but the first came out a source frame off when cut beside the others.
SHAPES_RANGES = [
    (12.72, 13.72),
    (1.8, 2.55),
    (10.67, 11.42),
    (13.717, 16.217),
    (17.801, 19.101),
    (1.293, 1.793),
    (3.76, 4.76),
    (11.3, 13.8),
]


def _cuts(film, ranges, directory) -> list[RangeCut]:
    return [
        RangeCut(film, start, end, directory / f"clip{index}.mp4")
        for index, (start, end) in enumerate(ranges)
    ]


@pytest.mark.parametrize(
    ("film_name", "ranges"),
    [
        ("bbb_480p_30s.mp4", BBB_RANGES),
        ("shapes", SHAPES_RANGES),
        ("video_90.mov", [(0.0, 0.1), (0.03, 0.1)]),  # rotated: turned upright, as alone
        ("flipping_a_pancake.mkv", [(5.333, 6.0), (6.5, 7.25)]),  # container says 0 frames
    ],
)
def test_ranges_cut_together_are_the_clips_each_cut_alone_gives_bit_for_bit(
    shared_media, shapes_film, tmp_path, film_name, ranges
):
    film = shapes_film if film_name == "shapes" else shared_media / film_name
    alone = [
        cut_clip(film, start, end, tmp_path / "alone" / f"clip{index}.mp4")
        for index, (start, end) in enumerate(ranges)
    ]

    together = cut_clips(_cuts(film, ranges, tmp_path / "together"), CutSettings())

    for one, other in zip(alone, together, strict=True):
        assert isinstance(other, ClipInfo)
        assert other.path.read_bytes() == one.path.read_bytes()
        assert (other.num_frames, other.width, other.height) == (
            one.num_frames,
            one.width,
            one.height,
        )
    assert sorted(path.name for path in (tmp_path / "together").iterdir()) == [
        f"clip{index}.mp4" for index in range(len(ranges))
    ]  # no temporary left


def test_one_ffmpeg_seeks_once_to_the_earliest_start(tmp_path):
    cuts = _cuts(tmp_path / "film.mp4", [(4.0, 5.0), (2.0, 3.0)], tmp_path)

    command = ffmpeg_group_command(cuts, CutSettings())

    assert command.count("-i") == 1 and command[command.index("-ss") + 1] == "2.000000"
    graph = command[command.index("-filter_complex") + 1]
    assert "split=2" in graph and "trim=start=2.000000,setpts=PTS-2.000000/TB" in graph
    assert "trim=start=4.000000,setpts=PTS-4.000000/TB" in graph  # each range by its own start
    assert command.count("-frames:v") == 2 and command.count("libx264") == 2


def test_a_damaged_part_fails_only_the_ranges_in_it_and_keeps_their_previous_clips(
    shared_media, tmp_path
):
    film = shared_media / "corrupted.mp4"  # decoding fails from about 2 s on
    cuts = _cuts(film, [(0.0, 0.5), (1.0, 1.5), (3.0, 3.5)], tmp_path)
    cuts[2].out_path.write_bytes(b"the clip made before")
    watcher = HardCutFinder(16)
    cuts[0] = RangeCut(film, 0.0, 0.5, cuts[0].out_path, [watcher])

    results = cut_clips(cuts, CutSettings())

    assert [type(result) for result in results] == [ClipInfo, ClipInfo, MediaError]
    assert str(results[2]).startswith(f"cannot cut {film} 00:03.000-00:03.500: ffmpeg failed")
    assert cuts[2].out_path.read_bytes() == b"the clip made before"
    assert results[0].num_frames == 8 and watcher.cuts == []  # watchers saw the final clip
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "clip0.mp4",
        "clip1.mp4",
        "clip2.mp4",
    ]


def test_a_range_shorter_than_a_frame_fails_alone(shared_media, tmp_path):
    film = shared_media / "bbb_480p_30s.mp4"

    cuts = _cuts(film, [(1.0, 1.02), (2.0, 2.5), (3.0, 3.5)], tmp_path)

    results = cut_clips(cuts, CutSettings())

    assert isinstance(results[0], MediaError) and "shorter than one frame" in str(results[0])
    assert [result.num_frames for result in results[1:]] == [8, 8]


def test_nearby_ranges_are_grouped_by_start_with_gaps_and_size_capped():
    spans = [(10.0, 12.0), (0.0, 2.0), (3.5, 5.0), (1.0, 1.5), (30.0, 31.0), (12.5, 13.0)]

    assert group_nearby(spans, most=8) == [[1, 3, 2], [0, 5], [4]]
    assert group_nearby(spans, most=2) == [[1, 3], [2], [0, 5], [4]]


def test_an_ffmpeg_cuts_fewer_ranges_of_a_bigger_film():
    assert ranges_per_ffmpeg(128, 96) == MAX_RANGES_PER_FFMPEG
    assert ranges_per_ffmpeg(1920, 1080) == 3
    assert ranges_per_ffmpeg(7680, 4320) == 1
