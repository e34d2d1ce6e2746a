from pathlib import Path

import pytest

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.ranges import (
    MAX_LISTED_OVERLAPS,
    load_project_ranges,
    parse_ranges_file,
    parse_time,
    ranges_within,
)
from wan_lora_dagster.problems import Problems

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def spans(ranges) -> dict[str, tuple[float, float]]:
    return {r.clip_id: (r.start, r.end) for r in ranges}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12", 12.0),
        ("12.5", 12.5),
        (".5", 0.5),
        ("01:02.5", 62.5),
        ("1:02", 62.0),
        ("90:00", 5400.0),
        ("1:02:03.250", 3723.25),
        ("0:00:00", 0.0),
    ],
)
def test_parse_time_reads_seconds_and_clock_times(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "is not a time"),
        ("-1", "is not a time"),
        ("1:2:3:4", "is not a time"),
        ("", "is not a time"),
        ("1:75", "75 seconds"),
        ("1:60:00", "60 minutes"),
    ],
)
def test_parse_time_says_what_is_wrong(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_time(text)


def test_every_line_format_names_notes_and_comments(tmp_path):
    path = write(
        tmp_path / "ranges" / "film.txt",
        "# START END [name] [# note]\n"
        "\n"
        "12 17\n"
        "   # an indented comment\n"
        "12.5 +5\n"
        "01:02.5 01:07.5 bunny_jump  # the jump # with a hash\n"
        "1:02:03.250 1:02:05 v2.final-cut\n",
    )

    ranges, warnings = parse_ranges_file(path)

    assert [(r.clip_id, r.line) for r in ranges] == [
        ("film_12000-17000", 3),
        ("film_12500-17500", 5),
        ("bunny_jump", 6),
        ("v2.final-cut", 7),
    ]
    assert spans(ranges)["film_12500-17500"] == (12.5, 17.5)
    assert spans(ranges)["bunny_jump"] == (62.5, 67.5)
    assert spans(ranges)["v2.final-cut"] == (3723.25, 3725.0)
    jump = ranges[2]
    assert (jump.name, jump.note, jump.film_stem, jump.ranges_file) == (
        "bunny_jump",
        "the jump # with a hash",
        "film",
        path,
    )
    assert ranges[0].name is None and ranges[0].note is None
    assert ranges[1].duration == pytest.approx(5.0)
    assert len(warnings) == 1  # 12-17 and 12.5-17.5 overlap


def test_a_windows_file_with_byte_order_mark_and_crlf_reads_the_same(tmp_path):
    path = tmp_path / "film.txt"
    path.write_bytes("\ufeff1 3 first\r\n4 +2\r\n".encode())

    ranges, _ = parse_ranges_file(path)

    assert spans(ranges) == {"first": (1.0, 3.0), "film_4000-6000": (4.0, 6.0)}


def test_a_file_that_is_not_utf8_is_a_config_error_naming_it_and_the_line(tmp_path):
    path = tmp_path / "film.txt"
    path.write_bytes("0 1\n1 3 café\n".encode("latin-1"))

    with pytest.raises(ConfigError, match="not UTF-8 text") as raised:
        parse_ranges_file(path)

    assert str(raised.value).startswith(f"{path}:2: ")


def test_clip_ids_stay_the_same_when_a_line_is_inserted_above(tmp_path):
    body = "1 3\n4 +2 named\n10.25 12.5\n"
    path = write(tmp_path / "film.txt", body)
    before = spans(parse_ranges_file(path)[0])

    write(path, "0 0.5  # a new first moment\n" + body)
    after, _ = parse_ranges_file(path)

    assert {clip_id: spans(after)[clip_id] for clip_id in before} == before
    assert [r.line for r in after] == [1, 2, 3, 4]


def test_overlapping_ranges_are_a_warning_naming_both_lines(tmp_path):
    path = write(tmp_path / "film.txt", "0 5\n10 12\n4 6\n")

    ranges, warnings = parse_ranges_file(path)

    assert len(ranges) == 3
    assert warnings == [f"{path}:1 (00:00.000-00:05.000) overlaps {path}:3 (00:04.000-00:06.000)"]


def test_many_overlaps_name_the_first_pairs_and_count_the_rest(tmp_path):
    # ten ranges that all share second 4: every one of the 45 pairs overlaps, and one touching
    # range (it starts where the others end at the latest) overlaps none of them
    lines = "".join(f"{index * 0.1:.1f} {5 + index * 0.1:.1f}\n" for index in range(10))
    path = write(tmp_path / "film.txt", lines + "5.9 7\n")

    _, warnings = parse_ranges_file(path)

    assert len(warnings) == MAX_LISTED_OVERLAPS + 1
    assert warnings[0] == f"{path}:1 (00:00.000-00:05.000) overlaps {path}:2 (00:00.100-00:05.100)"
    assert (
        warnings[-1]
        == f"{path}: {45 - MAX_LISTED_OVERLAPS} more pairs of ranges overlap (45 in all)"
    )


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("12", "expected 'START END [name] [# note]'"),
        ("1 2 name extra", "expected 'START END [name] [# note]'"),
        ("x 2", "'x' is not a time"),
        ("1 2:99", "99 seconds"),
        ("5 3", "end 00:03.000 is not after start 00:05.000"),
        ("5 5", "end 00:05.000 is not after start 00:05.000"),
        ("5 +0", "duration '+0' must be more than zero"),
        ("5 +-1", "'-1' is not a time"),
        ("1 2 bad/name", "'bad/name' is not a clip name"),
        ("1 2 _hidden", "'_hidden' is not a clip name"),
    ],
)
def test_a_bad_line_is_a_config_error_naming_file_and_line(tmp_path, line, what):
    path = write(tmp_path / "film.txt", f"0 1\n{line}\n")

    with pytest.raises(ConfigError) as raised:
        parse_ranges_file(path)

    assert str(raised.value).startswith(f"{path}:2: ")
    assert what in str(raised.value)


def test_every_bad_line_of_a_file_is_reported_at_once(tmp_path):
    path = write(tmp_path / "film.txt", "oops\n0 1\n3 2\n")

    with pytest.raises(ConfigError) as raised:
        parse_ranges_file(path)

    assert [line.split(": ")[0] for line in str(raised.value).splitlines()] == [
        f"{path}:1",
        f"{path}:3",
    ]


@pytest.mark.parametrize("text", ["1 2 same\n3 4 same\n", "1 2\n1 +1\n"])
def test_the_same_clip_id_twice_in_a_file_names_both_lines(tmp_path, text):
    path = write(tmp_path / "film.txt", text)

    with pytest.raises(ConfigError, match="is already used at") as raised:
        parse_ranges_file(path)

    assert str(raised.value).startswith(f"{path}:2: ")
    assert f"{path}:1" in str(raised.value)


def test_project_ranges_are_sorted_by_film_and_start(tmp_path):
    films = {"b": tmp_path / "films" / "b.mp4", "a": tmp_path / "films" / "a.mkv"}
    write(tmp_path / "ranges" / "a.txt", "20 22\n1 3\n")
    write(tmp_path / "ranges" / "b.txt", "0 1 b_first\n")
    write(tmp_path / "ranges" / "README.md", "not a ranges file")

    problems = Problems()
    ranges = load_project_ranges(films, tmp_path / "ranges", problems)

    assert [r.clip_id for r in ranges] == ["a_1000-3000", "a_20000-22000", "b_first"]
    assert list(problems) == []


def test_project_problems_are_all_collected_and_the_good_ranges_kept(tmp_path):
    films = {stem: tmp_path / "films" / f"{stem}.mp4" for stem in ("lonely", "a", "b", "bad")}
    ranges_dir = tmp_path / "ranges"
    a = write(ranges_dir / "a.txt", "0 1 shared_name\n")
    b = write(ranges_dir / "b.txt", "# b\n5 6 shared_name\n7 8 b_own\n")
    bad = write(ranges_dir / "bad.txt", "5 4\n6 7\n")
    orphan = write(ranges_dir / "orphan.txt", "0 1\n")
    problems = Problems()

    ranges = load_project_ranges(films, ranges_dir, problems)

    assert [r.clip_id for r in ranges] == ["shared_name", "b_own", "bad_6000-7000"]
    assert [str(problem) for problem in problems.errors] == [
        f"{orphan} has no film: there is no films/orphan.* (add the film, or remove this file)",
        f"{bad}:1: end 00:04.000 is not after start 00:05.000",
        f"{b}:2: clip id 'shared_name' is already used at {a}:1; "
        "give one of them another name or other times",
    ]
    assert [str(problem) for problem in problems.warnings] == [
        f"{films['lonely']} has no ranges file: create {ranges_dir / 'lonely.txt'}"
    ]


def test_a_ranges_file_without_ranges_is_a_warning(tmp_path):
    film = tmp_path / "films" / "quiet.mp4"
    path = write(tmp_path / "ranges" / "quiet.txt", "# nothing chosen yet\n")

    problems = Problems()

    assert load_project_ranges({"quiet": film}, tmp_path / "ranges", problems) == []
    assert [str(problem) for problem in problems] == [
        f"{path} declares no ranges, so {film} is unused"
    ]
    assert not problems.errors


def test_a_range_past_the_end_of_the_film_names_line_and_duration(tmp_path, shared_media):
    film = shared_media / "bbb_480p_30s.mp4"
    path = write(tmp_path / "bbb_480p_30s.txt", "25 30\n31 33\n")
    ranges, _ = parse_ranges_file(path)
    problems = Problems()

    within = ranges_within(ranges, probe_video(film).duration, film, problems)

    assert within == ranges[:1], "ending exactly at the end is fine"
    assert [str(problem) for problem in problems] == [
        f"{path}:2: range 00:31.000-00:33.000 ends past the end of {film} (duration 30.000 s)"
    ]
