"""The ranges page's edits: one line of `ranges/<film>.txt` changes, every other stays as it
was, and a range the command line refuses is refused with its message."""

import pytest

from wan_lora_dagster.media.ranges import parse_ranges_file
from wan_lora_dagster.problems import ProblemsError

FILM = "shapes"


def timeline(client) -> dict:
    response = client.get(f"/api/ranges/{FILM}")
    assert response.status_code == 200
    return response.json()


def edit(client, seen: dict, **change):
    return client.post(f"/api/ranges/{FILM}", json={"hash": seen["hash"], **change})


def test_the_timeline_has_the_films_cuts_and_its_ranges(client):
    shown = timeline(client)
    assert shown["cuts"] == [6.0, 12.0, 18.0]  # the demo film's scenes change every 6 s
    assert ("drift", 13.0, 15.5) in [(r["clip_id"], r["start"], r["end"]) for r in shown["ranges"]]


def test_an_added_range_is_one_new_line_and_a_new_clip(client, demo):
    path = demo / "ranges" / f"{FILM}.txt"
    before = path.read_text().split("\n")
    response = edit(client, timeline(client), line=None, start="22", end="+1.5")
    assert response.status_code == 200
    after = path.read_text().split("\n")
    assert [line for line in after if line not in before] == ["22 +1.5"]
    assert [line for line in before if line not in after] == []
    ids = {card["id"] for card in client.get("/api/cards").json()["cards"]}
    assert "shapes_22000-23500" in ids  # the studio's cards follow the ranges at once


def test_a_moved_range_keeps_its_name_and_comment_and_other_lines(client, demo):
    path = demo / "ranges" / f"{FILM}.txt"
    before = path.read_text().split("\n")
    seen = timeline(client)
    line = next(r["line"] for r in seen["ranges"] if r["clip_id"] == "drift")
    assert edit(client, seen, line=line, start="13.5", end="15.5").status_code == 200
    after = path.read_text().split("\n")
    assert after[line - 1] == "13.5 15.5 drift    # scene 3, named: its clip id is `drift`"
    assert after[: line - 1] + after[line:] == before[: line - 1] + before[line:]
    seen = timeline(client)
    assert edit(client, seen, line=line).status_code == 200  # and deleted
    assert path.read_text().split("\n") == before[: line - 1] + before[line:]


@pytest.mark.parametrize(("start", "end"), [("3", "2"), ("3", "900"), ("x", "4")])
def test_a_range_the_command_line_refuses_is_refused_with_its_message(client, demo, start, end):
    path = demo / "ranges" / f"{FILM}.txt"
    before = path.read_text()
    response = edit(client, timeline(client), line=2, start=start, end=end)
    assert response.status_code == 400
    assert path.read_text() == before
    path.write_text(before.replace("0.5 3.0", f"{start} {end}"))  # the same, by hand
    if end != "900":  # past the film's end: found when the film is probed, as the CLI does
        with pytest.raises(ProblemsError) as refused:
            parse_ranges_file(path)
        assert str(refused.value.problems.errors[0]) in response.json()["error"]
    assert f"{path}:2: " in response.json()["error"]


def test_a_ranges_file_changed_since_the_page_read_it_is_not_rewritten(client, demo):
    path = demo / "ranges" / f"{FILM}.txt"
    seen = timeline(client)
    path.write_text(path.read_text() + "23 23.5\n")
    response = edit(client, seen, line=None, start="22", end="22.5")
    assert response.status_code == 409
    assert "22 22.5" not in path.read_text()


@pytest.mark.parametrize("film", ["..", ".hidden", "nofilm", "shapes.txt"])
def test_a_film_name_outside_ranges_is_refused(client, demo, film):
    before = sorted(str(path) for path in demo.rglob("*"))
    response = client.post(
        f"/api/ranges/{film}", json={"hash": "", "line": None, "start": "1", "end": "2"}
    )
    assert response.status_code in (400, 404, 405)
    assert sorted(str(path) for path in demo.rglob("*")) == before
