"""Loading a project finds every problem of its files in one pass, and keeps what can be made."""

import shutil
from pathlib import Path

import pytest

from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.problems import ProblemsError
from wan_lora_dagster.project import open_project
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import ffmpeg


@pytest.fixture(scope="module")
def small_film(tmp_path_factory) -> Path:
    return make_synthetic_film(
        tmp_path_factory.mktemp("film") / "film.mp4", duration=2, size=(64, 48), num_scenes=1
    )


@pytest.fixture
def project(tmp_path) -> Path:
    return init_project(tmp_path / "project")


def add_film(project: Path, film: Path, name: str, ranges: str | None = None) -> Path:
    path = project / "films" / name
    shutil.copyfile(film, path)
    if ranges is not None:
        (project / "ranges" / f"{path.stem}.txt").write_text(ranges)
    return path


def test_a_bad_recipe_is_reported_with_every_other_problem_at_once(project, small_film):
    config = project / "wan_lora.toml"
    config.write_text(config.read_text().replace("batch_size = 1", "batch_sise = 1"))
    add_film(project, small_film, "good.mp4", "0 1\n1 oops\n")
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", project / "films" / "sound.m4a")
    (project / "ranges" / "sound.txt").write_text("0 1\n")

    with pytest.raises(ProblemsError) as raised:
        load_catalog(open_project(project))

    line = config.read_text().splitlines().index("batch_sise = 1") + 1
    assert str(raised.value).splitlines() == [
        f"{config}:{line}: datasets.0.batch_sise: unknown key",
        f"{project / 'ranges' / 'good.txt'}:2: 'oops' is not a time (use seconds like 12.5 or "
        "[HH:]MM:SS[.mmm])",
        f"{project / 'films' / 'sound.m4a'} is not a video: it has no video stream",
    ]


def test_a_ranges_file_may_name_a_video_of_any_suffix(project, small_film):
    odd = add_film(project, small_film, "odd.video", "0 1\n")
    add_film(project, small_film, "notes.srt")  # no ranges file names it: not looked at

    catalog = load_catalog(open_project(project))

    assert catalog.film_paths == {"odd": odd}
    assert catalog.clip_ids == ["odd_0-1000"]
    assert list(catalog.problems) == []


def test_two_films_of_one_name_are_an_error_and_the_other_films_go_on(project, small_film):
    mkv = add_film(project, small_film, "twice.mkv", "0 1\n")
    mp4 = add_film(project, small_film, "twice.mp4")
    add_film(project, small_film, "single.mp4", "0 1\n")

    catalog = load_catalog(open_project(project))

    assert catalog.clip_ids == ["single_0-1000"]
    assert [str(problem) for problem in catalog.problems] == [
        f"{mkv} and {mp4} share the name 'twice', so {project / 'ranges' / 'twice.txt'} cannot "
        "say which it means: rename all but one"
    ]
