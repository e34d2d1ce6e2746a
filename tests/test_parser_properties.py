"""Whatever a user types into a ranges file or wan_lora.toml, loading it either works or says
what is wrong with our error, naming the file and a line of it: never a traceback."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.media.ranges import parse_ranges_file
from wan_lora_dagster.problems import ProblemsError
from wan_lora_dagster.recipe.datasets import CaptionSettings, DatasetSection
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.recipe.reading import load_recipe
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.scaffold import DEMO_RECIPE

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

FAST = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Pieces of real range lines, so that examples get past the first check often.
RANGE_TOKENS = st.sampled_from(
    ["0", "1", "12.5", ".5", "3.", "01:02.5", "1:02:03.250", "59:60", "1:60:00", "+5", "+0",
     "+-1", "-1", "9" * 400, "1e5", "clip", "a.b-c_1", "bad/name", "_x", "#", "# note", "\t",
     ":", "1:2:3:4", "\u0663", "\ufeff", "\r", "\x0c", "\u2028"]
)  # fmt: skip
RANGE_LINE = st.lists(st.one_of(RANGE_TOKENS, st.text(max_size=4)), max_size=5).map(" ".join)
RANGES_TEXT = st.one_of(st.text(), st.lists(RANGE_LINE, max_size=8).map("\n".join))


def lines_of(data: bytes) -> int:
    return data.count(b"\n") + 1


def assert_names_file_and_line(error: ConfigError, path: Path, data: bytes) -> None:
    assert isinstance(error, ProblemsError), error
    assert error.problems.errors
    for problem in error.problems.errors:
        assert problem.file == path, problem
        assert 1 <= problem.line <= lines_of(data), problem
        assert str(problem).startswith(f"{path}:{problem.line}: ")


def check_ranges(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        ranges, _ = parse_ranges_file(path)
    except ConfigError as error:
        assert_names_file_and_line(error, path, data)
        return
    for clip_range in ranges:
        assert 0 <= clip_range.start < clip_range.end, clip_range
        assert 1 <= clip_range.line <= lines_of(data)


@FAST
@given(text=RANGES_TEXT)
def test_any_ranges_text_parses_or_names_file_and_line(tmp_path, text):
    check_ranges(tmp_path / "film.txt", text.encode("utf-8", "surrogatepass"))


@FAST
@given(data=st.binary(max_size=200))
def test_any_ranges_bytes_parse_or_name_file_and_line(tmp_path, data):
    check_ranges(tmp_path / "film.txt", data)


def recipe_sections() -> st.SearchStrategy[dict]:
    """TOML documents of our own tables and keys, with values of every TOML type."""
    value = st.recursive(
        st.one_of(
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
            st.sampled_from(["clips", "stills", "tiny", "shift", "bf16", "musubi", "blip2"]),
        ),
        lambda children: st.lists(children, max_size=3),
        max_leaves=4,
    )

    def table(model) -> st.SearchStrategy[dict]:
        keys = st.sampled_from([*model.model_fields, "typo_key"])
        return st.dictionaries(keys, value, max_size=4)

    return st.fixed_dictionaries(
        {},
        optional={
            "datasets": st.lists(table(DatasetSection), max_size=2),
            "captions": table(CaptionSettings),
            "training": table(TrainingSettings),
            "eval": table(EvalSettings),
            "extra": value,
        },
    )


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's (a lone surrogate is refused)
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def toml_document(document: dict) -> str:
    def table(header: str, keys: dict) -> list[str]:
        return [header, *(f"{key} = {toml_value(value)}" for key, value in keys.items())]

    lines = [f"extra = {toml_value(document['extra'])}"] if "extra" in document else []
    for name in ("captions", "training", "eval"):
        if name in document:
            lines += table(f"[{name}]", document[name])
    for section in document.get("datasets", []):
        lines += table("[[datasets]]", section)
    return "\n".join(lines) + "\n"


def mutated(text: str) -> st.SearchStrategy[str]:
    """The text with a few characters inserted, replaced or deleted."""

    def edit(draw_text: str, edits: list[tuple[int, str, int]]) -> str:
        for position, inserted, deleted in edits:
            at = position % (len(draw_text) + 1)
            draw_text = draw_text[:at] + inserted + draw_text[at + deleted :]
        return draw_text

    edits = st.lists(
        st.tuples(st.integers(0, 10_000), st.text(max_size=3), st.integers(0, 3)),
        min_size=1,
        max_size=3,
    )
    return edits.map(lambda chosen: edit(text, chosen))


RECIPE_TEXT = st.one_of(
    st.text(),
    recipe_sections().map(toml_document),
    mutated(DEMO_RECIPE),
)


@FAST
@given(text=RECIPE_TEXT)
def test_any_recipe_text_loads_or_names_file_and_line(tmp_path, text):
    path = tmp_path / "wan_lora.toml"
    data = text.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    try:
        load_recipe(path)
    except ConfigError as error:
        assert_names_file_and_line(error, path, data)


def test_the_demo_recipe_itself_loads(tmp_path):
    """The mutations above start from a recipe that is valid."""
    path = tmp_path / "wan_lora.toml"
    path.write_text(DEMO_RECIPE)
    assert load_recipe(path).captions.trigger == "demostyle"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[training]\nnetwork_dim = \n", 2),  # TOML syntax: tomllib's own line
        ("[training]\nnetwork_dim = 8\n", 1),  # no [[datasets]]: the top of the file
        ('[[datasets]]\nsource = "clips"\n', 1),  # no resolution: its table's header
        ("a = 1\n\n\n[b", 4),  # the end of the document
    ],
)
def test_a_problem_without_a_line_of_its_own_points_at_the_nearest_one(tmp_path, text, line):
    path = tmp_path / "wan_lora.toml"
    path.write_text(text)
    with pytest.raises(ProblemsError) as raised:
        load_recipe(path)
    assert {problem.line for problem in raised.value.problems.errors} == {line}
