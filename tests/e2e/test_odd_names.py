"""Films named as Linux allows: every name that can name a clip's files goes through every stage
to its caches; one that cannot is named up front with its ranges line, and fails nothing else."""

import json
from pathlib import Path

import pytest

from wan_lora_dagster.formats.cache_files import LONGEST_ITEM_ID_BYTES
from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project_builder import recipe_text
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.commands import wan_lora_in_shell

RECIPE = recipe_text(
    datasets=[{"source": "clips", "resolution": [64, 48], "target_frames": [9]}],
    captions={"captioner": "blip2", "model": "tiny"},
    training={"model": "tiny"},
)
GOOD_NAMES = (
    "back\\slash",  # the film: a backslash is no separator on Linux
    "two words & 'single' \"double\"",
    "ünïcödé 日本",
    "[brackets] *star* ?mark 100%d",  # glob characters, and an image2 pattern for ffmpeg
    "-dash, comma; colon:x",
    "wait... what",
)
TAB_FILM = "tab\there"
LONG_FILM = "x" * (LONGEST_ITEM_ID_BYTES - 3)  # "_0-1000" makes its clip id too long
STAGES = ("clips", "captions", "text_cache", "latent_cache")


@pytest.fixture(scope="module")
def odd_project(tmp_path_factory) -> Path:
    project = init_project(tmp_path_factory.mktemp("odd") / "project")
    (project / "wan_lora.toml").write_text(RECIPE)
    for stem in (*GOOD_NAMES, TAB_FILM, LONG_FILM):
        make_synthetic_film(
            project / "films" / f"{stem}.mp4", duration=1, size=(64, 48), num_scenes=1
        )
        (project / "ranges" / f"{stem}.txt").write_text("0 1\n")
    # a named range of the tab film: its id is the name, which can name files
    (project / "ranges" / f"{TAB_FILM}.txt").write_text("0 1\n0 1 tabbed\n")
    return project


def test_every_nameable_film_reaches_its_caches_and_the_others_are_named_up_front(odd_project):
    ranges = odd_project / "ranges"

    run = wan_lora_in_shell(odd_project, "run", "--select", "+latent_cache,+text_cache", "--json")

    assert run.returncode == 1, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    made = [f"{stem}_0-1000" for stem in GOOD_NAMES] + ["tabbed"]
    for stage in STAGES:
        assert summary[stage]["failed"] == [], (stage, summary[stage]["errors"])
        for clip in made:
            record = odd_project / "out" / "records" / stage / f"{clip}.json"
            assert record.is_file(), (stage, clip)
    latents = [path.name for path in (odd_project / "out/cache").rglob("*_wan.safetensors")]
    for clip in made:
        assert any(name.startswith(f"{clip}_0") for name in latents), clip
    tab_line = (
        f"  {ranges / f'{TAB_FILM}.txt'}:1: clip id {f'{TAB_FILM}_0-1000'!r} of "
        f"{odd_project / 'films' / f'{TAB_FILM}.mp4'} cannot name a file: it has the control "
        "character '\\t'. Rename the film and this file, or name the range (a third field)"
    )
    long_line = (
        f"  {ranges / f'{LONG_FILM}.txt'}:1: clip id {f'{LONG_FILM}_0-1000'!r} of "
        f"{odd_project / 'films' / f'{LONG_FILM}.mp4'} cannot name a file: it is "
        f"{LONGEST_ITEM_ID_BYTES + 4} bytes long"
    )
    errors = run.stderr[run.stderr.index("2 problems") :].splitlines()
    assert errors[1] == tab_line
    assert errors[2].startswith(long_line)
    assert "cannot name" not in json.dumps(summary), "no stage meets a name it cannot use"
