"""A folder of films of mixed quality, tried as a new user would: ONE `wan-lora run` makes every
good film's exact clips and names every problem, each with its file (and line)."""

from pathlib import Path

import pytest

from wan_lora_dagster.media.probe import probe_video
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import ffmpeg, wan_lora_in_shell

HOSTILE = "$(touch pwned)"


@pytest.fixture(scope="module")
def mixed_films(tmp_path_factory) -> Path:
    """Three good films, three bad ones (each with a ranges file) and one without ranges."""
    project = init_project(tmp_path_factory.mktemp("mixed") / "project")
    films, ranges = project / "films", project / "ranges"
    # variable frame rate: 30 fps with two frames of every five dropped, each kept at its time
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=30:duration=4",
        "-vf", r"select=lt(mod(n\,5)\,3)", "-fps_mode", "vfr",
        "-pix_fmt", "yuv420p", "-c:v", "libx264", films / "vfr.mp4",
    )  # fmt: skip
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=853x479:rate=25:duration=3",
        "-pix_fmt", "yuv444p", "-c:v", "ffv1", films / "odd.mkv",
    )  # fmt: skip
    make_synthetic_film(films / f"{HOSTILE}.mp4", duration=3, size=(64, 48), num_scenes=1)
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24", "-frames:v", "1",
        "-pix_fmt", "yuv420p", "-c:v", "libx264", films / "one_frame.mp4",
    )  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", films / "audio.m4a")
    (films / "empty.mp4").write_bytes(b"")
    make_synthetic_film(films / "lonely.mp4", duration=1, size=(64, 48), num_scenes=1)
    for stem, text in {
        "vfr": "0 3\n",
        "odd": "0.5 2.5\n",
        HOSTILE: "0 2\n",
        "one_frame": "0 2\n",
        "audio": "0 1\n",
        "empty": "0 1\n",
    }.items():
        (ranges / f"{stem}.txt").write_text(text)
    return project


def frames(clip: Path) -> int:
    return probe_video(clip, count_frames=True).num_frames


def test_one_run_makes_the_good_films_clips_and_names_every_problem(mixed_films):
    films, ranges, clips = mixed_films / "films", mixed_films / "ranges", mixed_films / "out/clips"
    here = mixed_films.parent

    run = wan_lora_in_shell(here, "run", "--project", mixed_films, "--select", "clips")

    assert run.returncode == 1, run.stdout + run.stderr
    assert frames(clips / "vfr_0-3000.mp4") == 48
    assert frames(clips / "odd_500-2500.mp4") == 32
    assert frames(clips / f"{HOSTILE}_0-2000.mp4") == 32
    assert sorted(path.name for path in clips.glob("*.mp4")) == [
        f"{HOSTILE}_0-2000.mp4",
        "odd_500-2500.mp4",
        "vfr_0-3000.mp4",
    ]
    problems = run.stdout[run.stdout.index("3 problems") :].splitlines()
    assert problems == [
        "3 problems (their clips are not made, and training waits until they are fixed):",
        f"  {films / 'audio.m4a'} is not a video: it has no video stream",
        f"  {films / 'empty.mp4'} is empty (0 bytes): copy the film again",
        f"  {ranges / 'one_frame.txt'}:1: range 00:00.000-00:02.000 ends past the end of "
        f"{films / 'one_frame.mp4'} (duration 0.042 s)",
        "1 warning:",
        f"  {films / 'lonely.mp4'} has no ranges file: create {ranges / 'lonely.txt'}",
    ]
    assert "clips                   3      0      0       0" in run.stdout
    assert not list(here.rglob("pwned")), "a film's name ran in a shell"


def test_status_inside_the_project_shows_a_film_without_ranges_as_a_warning(mixed_films):
    status = wan_lora_in_shell(
        mixed_films / "films", "status"
    )  # no --project: found from a subfolder

    assert status.returncode == 1, status.stderr  # the three bad films are problems
    assert "3 problems" in status.stdout
    lonely, ranges = mixed_films / "films" / "lonely.mp4", mixed_films / "ranges"
    assert status.stdout.endswith(
        f"1 warning:\n  {lonely} has no ranges file: create {ranges / 'lonely.txt'}\n"
    )
