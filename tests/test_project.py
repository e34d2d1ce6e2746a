"""wan_lora.toml: every mistake a user can make is named with the file, the key and the line."""

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.project import find_project, open_project
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.recipes import MINIMAL, error_for, write

pytestmark = pytest.mark.fast  # the unit tier: make test-fast


def test_the_init_template_is_a_valid_recipe(tmp_path):
    init_project(tmp_path / "p")
    recipe = open_project(tmp_path / "p").recipe
    assert recipe.datasets[0].name == "video"
    assert recipe.training.engine == "diffusers"
    assert 0.0 in recipe.eval.strengths


def test_init_never_overwrites_a_recipe(tmp_path):
    path = write(tmp_path, MINIMAL + "# mine\n")
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path)
    assert path.read_text().endswith("# mine\n")


def test_sections_get_default_names_from_their_source(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL + MINIMAL.replace("clips", "stills")))
    assert [s.name for s in recipe.datasets] == ["clips_0", "stills_1"]


def test_unknown_key_names_file_key_and_line(tmp_path):
    message = error_for(tmp_path, MINIMAL + "\n[training]\nnetwork_dim = 8\nlearning_rat = 1e-4\n")
    assert "wan_lora.toml:8: training.learning_rat: unknown key" in message


def test_unknown_key_in_the_second_dataset_section_points_at_its_line(tmp_path):
    text = MINIMAL + MINIMAL + "resolutoin = [1, 2]\n"
    assert "wan_lora.toml:9: datasets.1.resolutoin: unknown key" in error_for(tmp_path, text)


def test_wrong_type_names_key_and_line(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\nnetwork_dim = "big"\n')
    assert "wan_lora.toml:6: training.network_dim:" in message
    assert "integer" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[training]\nengine = "kohya"\n', "training.engine"),
        ('[training]\ntask = "t2v-7B"\n', "training.task"),
        ("[training]\nnetwork_dim = 0\n", "training.network_dim"),
        ("[eval]\nprompts = []\n", "eval would produce no video"),
        ("[eval]\nstrengths = []\n", "eval.strengths"),
        ("[eval]\nnum_frames = 8\n", "4N+1"),
        ('[captions]\ncaptioner = "blip2"\n', "needs `model`"),
    ],
)
def test_bad_settings_are_caught_before_any_work(tmp_path, extra, expected):
    assert expected in error_for(tmp_path, MINIMAL + extra)


def test_resolution_must_be_a_multiple_of_16(tmp_path):
    message = error_for(tmp_path, MINIMAL.replace("[384, 208]", "[384, 200]"))
    assert "wan_lora.toml:3: datasets.0.resolution" in message


def test_duplicate_section_names_are_refused(tmp_path):
    text = MINIMAL.replace("[[datasets]]", '[[datasets]]\nname = "a"') * 2
    assert "unique" in error_for(tmp_path, text)


def test_toml_syntax_error_names_the_file(tmp_path):
    message = error_for(tmp_path, MINIMAL + "[training\n")
    assert "wan_lora.toml" in message and "not valid TOML" in message


def test_missing_project_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="wan-lora init"):
        open_project(tmp_path / "nowhere")


def test_the_project_is_the_nearest_folder_at_or_above_that_holds_a_recipe(tmp_path):
    outer = init_project(tmp_path / "outer")
    inner = init_project(outer / "films" / "inner")
    (inner / "films" / "deep").mkdir()

    assert find_project(outer) == outer.resolve()
    assert find_project(outer / "ranges") == outer.resolve()
    assert find_project(inner / "films" / "deep") == inner.resolve()


def test_a_command_outside_any_project_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    assert main(["status"]) == 2

    error = capsys.readouterr().err
    assert f"no wan_lora.toml in {tmp_path.resolve()} or any folder above it" in error
    assert "--project" in error


# Wan 2.2 settings: mistakes named with the file and the key.


def test_experts_belong_to_the_two_expert_tasks(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "t2v-14B"\nexperts = ["high"]\n')
    assert "wan_lora.toml" in message and "experts is for the two-expert Wan 2.2 tasks" in message
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "t2v-A14B"\nexperts = []\n')
    assert 'list "high", "low" or both' in message


def test_an_expert_has_a_name_and_the_boundary_lies_inside_zero_one(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "i2v-A14B"\nexperts = ["mid"]\n')
    assert "wan_lora.toml:7: training.experts.0" in message
    message = error_for(
        tmp_path, MINIMAL + '[training]\ntask = "i2v-A14B"\ntimestep_boundary = 900\n'
    )
    assert "wan_lora.toml:7: training.timestep_boundary" in message


def test_ti2v_5b_sizes_divide_by_32(tmp_path):
    message = error_for(tmp_path, MINIMAL + '[training]\ntask = "ti2v-5B"\n')
    assert "ti2v-5B needs sides that are multiples of 32" in message
    assert "'clips_0' resolution [384, 208]" in message
    assert "[eval]" not in message  # its default 64 x 64 divides by 32
    fixed = MINIMAL.replace("[384, 208]", "[384, 224]") + '[training]\ntask = "ti2v-5B"\n'
    assert load_recipe(write(tmp_path, fixed)).training.task == "ti2v-5B"
