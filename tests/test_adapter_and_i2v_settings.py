"""`[training] network`, `dora` and `i2v`: a wrong combination is named with the setting, the
file and its line; the defaults leave older projects' fingerprints as they were."""

from pathlib import Path

import pytest

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.recipe.training import TrainingSettings

pytestmark = pytest.mark.fast

CLIPS = """\
[[datasets]]
source = "clips"
resolution = [64, 32]
target_frames = [9]

[training]
"""


def error_for(tmp_path: Path, text: str) -> str:
    path = tmp_path / "wan_lora.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_recipe(path)
    return str(raised.value)


def test_dora_is_for_lora_only(tmp_path):
    message = error_for(tmp_path, CLIPS + 'network = "lokr"\ndora = true\n')
    assert "wan_lora.toml:6" in message and "dora = true" in message and "lokr" in message


def test_an_unknown_network_is_named(tmp_path):
    message = error_for(tmp_path, CLIPS + 'network = "lycoris"\n')
    assert "wan_lora.toml:7" in message and "training.network" in message


@pytest.mark.parametrize(
    ("task", "reason"),
    [("t2v-1.3B", "has no start image"), ("i2v-14B", "is image-to-video already")],
)
def test_i2v_is_refused_for_other_tasks(tmp_path, task, reason):
    message = error_for(tmp_path, CLIPS + f'task = "{task}"\ni2v = true\n')
    assert "i2v = true is for ti2v-5B" in message and reason in message


def test_i2v_needs_frames_after_the_first(tmp_path):
    stills = CLIPS.replace(
        "[training]", '[[datasets]]\nsource = "stills"\nresolution = [64, 32]\n\n[training]'
    )
    message = error_for(tmp_path, stills + 'task = "ti2v-5B"\ni2v = true\n')
    assert "i2v = true" in message and "'stills_1'" in message


def test_eval_images_need_i2v_on_ti2v(tmp_path):
    text = CLIPS + 'task = "ti2v-5B"\n\n[eval]\nimages = ["a.png"]\nwidth = 64\nheight = 32\n'
    assert "without [training] i2v = true" in error_for(tmp_path, text)
    path = tmp_path / "ok.toml"
    path.write_text(text.replace('task = "ti2v-5B"', 'task = "ti2v-5B"\ni2v = true'))
    assert load_recipe(path).eval.images == ("a.png",)


def test_the_defaults_keep_an_older_fingerprint():
    """A project written before these settings keeps its checkpoints current: main's value
    before them (tests/engines/test_fp8_compute.py pins the same)."""
    assert TrainingSettings().settings_fingerprint() == "583288ea6e199a19"
    for changed in ({"network": "lokr"}, {"dora": True}, {"task": "ti2v-5B", "i2v": True}):
        assert TrainingSettings(**changed).settings_fingerprint() != "583288ea6e199a19"
