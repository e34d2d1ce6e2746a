"""The checkpoints page: the eval grid, the pin it writes into wan_lora.toml, and lineage."""

import pytest
from starlette.testclient import TestClient

from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.pipeline.evaluation import choose_best
from wan_lora_dagster.pipeline.lineage import checkpoint_lineage
from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.app import create_app
from wan_lora_dagster.studio.security import Access

pytestmark = pytest.mark.slow  # runs the demo through eval first: minutes on a loaded machine


@pytest.fixture
def evaluated(evaluated_demo, copy_project):
    return copy_project(evaluated_demo)


@pytest.fixture
def studio(evaluated, studio_url) -> TestClient:
    app = create_app(open_project(evaluated), Access.for_bind("127.0.0.1", None))
    return TestClient(app, base_url=studio_url, headers={"origin": studio_url})


def test_the_grid_lists_every_checkpoint_at_every_strength(studio):
    grid = studio.get("/api/checkpoints").json()
    rows = grid["checkpoints"]
    assert len(rows) == 2 and all(row["evaluated"] for row in rows)
    for row in rows:
        assert sorted(video["strength"] for video in row["videos"]) == grid["strengths"]
        for video in row["videos"]:
            served = studio.get(f"/eval/{row['checkpoint']}/{video['index']}/video")
            assert served.status_code == 200 and served.content[4:8] == b"ftyp"  # an mp4
    losses = {row["checkpoint"]: row["validation_loss"] for row in rows}
    assert grid["pin"] is None and grid["chosen"] == min(losses, key=losses.get)


def test_a_pin_is_one_line_in_eval_and_best_lora_exports_it(studio, evaluated):
    recipe = evaluated / "wan_lora.toml"
    before = recipe.read_text()
    grid = studio.get("/api/checkpoints").json()
    other = next(r["checkpoint"] for r in grid["checkpoints"] if r["checkpoint"] != grid["chosen"])

    pinned = studio.post("/api/checkpoints/pin", json={"checkpoint": other, "hash": grid["hash"]})

    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["pin"] == pinned.json()["chosen"] == other
    assert recipe.read_text() == before.rstrip("\n") + f'\npin = "{other}"\n'
    catalog = load_catalog(open_project(evaluated))
    assert choose_best(catalog, [row["checkpoint"] for row in grid["checkpoints"]]) == other

    unpinned = studio.post(
        "/api/checkpoints/pin", json={"checkpoint": None, "hash": pinned.json()["hash"]}
    )
    assert unpinned.status_code == 200 and recipe.read_text() == before


def test_a_pin_replaces_the_pin_line_keeping_its_comment_and_the_tables_after(studio, evaluated):
    recipe = evaluated / "wan_lora.toml"
    text = recipe.read_text().replace("[eval]\n", '[eval]\npin = "old"  # my pick\n')
    recipe.write_text(text + "\n# the end\n")
    grid = studio.get("/api/checkpoints").json()
    assert "old" in grid["pin_problem"]  # a pin of no current checkpoint: best_lora refuses it
    key = grid["checkpoints"][0]["checkpoint"]

    assert (
        studio.post(
            "/api/checkpoints/pin", json={"checkpoint": key, "hash": grid["hash"]}
        ).status_code
        == 200
    )

    assert recipe.read_text() == text.replace('"old"', f'"{key}"') + "\n# the end\n"


def test_a_pin_of_an_unknown_checkpoint_is_refused(studio, evaluated):
    recipe = evaluated / "wan_lora.toml"
    before = recipe.read_text()
    grid = studio.get("/api/checkpoints").json()

    refused = studio.post("/api/checkpoints/pin", json={"checkpoint": "nope", "hash": grid["hash"]})

    assert refused.status_code == 400
    assert "'nope' is not a checkpoint of the current training run" in refused.json()["error"]
    assert recipe.read_text() == before


def test_a_pin_over_a_recipe_changed_since_the_page_read_it_is_refused(studio, evaluated):
    recipe = evaluated / "wan_lora.toml"
    grid = studio.get("/api/checkpoints").json()
    recipe.write_text(recipe.read_text() + "# edited by hand\n")
    changed = recipe.read_text()
    key = grid["checkpoints"][0]["checkpoint"]

    refused = studio.post("/api/checkpoints/pin", json={"checkpoint": key, "hash": grid["hash"]})

    assert (
        refused.status_code == 409 and "changed since the page read it" in refused.json()["error"]
    )
    assert recipe.read_text() == changed


def test_a_pin_without_the_studios_origin_is_refused(evaluated, studio_url):
    app = create_app(open_project(evaluated), Access.for_bind("127.0.0.1", None))
    recipe = evaluated / "wan_lora.toml"
    before = recipe.read_text()
    for origin in ({}, {"origin": "http://evil.example"}):
        client = TestClient(app, base_url=studio_url, headers=origin)
        grid = client.get("/api/checkpoints").json()
        key = grid["checkpoints"][0]["checkpoint"]
        refused = client.post(
            "/api/checkpoints/pin", json={"checkpoint": key, "hash": grid["hash"]}
        )
        assert refused.status_code == 403
    assert recipe.read_text() == before


def test_the_captions_that_trained_a_checkpoint_are_the_cli_lineage(studio, evaluated):
    key = studio.get("/api/checkpoints").json()["checkpoints"][-1]["checkpoint"]

    shown = studio.get(f"/api/checkpoints/{key}/lineage").json()

    assert shown == checkpoint_lineage(load_catalog(open_project(evaluated)), key)
    assert shown["clips"] and all(clip["caption"] for clip in shown["clips"])
    assert studio.get("/api/checkpoints/..%2Fetc/lineage").status_code in (400, 404)


def test_the_page_and_its_nav_links(studio):
    page = studio.get("/checkpoints")
    assert page.status_code == 200 and "/static/checkpoints.js" in page.text
    for other in ("/captions", "/ranges"):
        assert 'href="/checkpoints"' in studio.get(other).text
