"""The checkpoints page in Debian's Chromium on the demo project run through eval: the grid
plays, the loss plot marks the chosen checkpoint, and "use this one" pins it in wan_lora.toml."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from wan_lora_dagster.testing.chromium import (
    CHROMIUM,
    PAGE_TIMEOUT_MS,
    SHOWS_A_FRAME,
    screenshot,
    serving,
)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's Chromium is not installed at {CHROMIUM}"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = sync_api.expect


pytestmark = [needs_chromium, pytest.mark.slow]  # runs the demo through eval first


@pytest.fixture(scope="module")
def project(tmp_path_factory, evaluated_demo) -> Path:
    target = tmp_path_factory.mktemp("studio_checkpoints") / "demo"
    shutil.copytree(evaluated_demo, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def studio(project) -> Iterator[str]:
    with serving(project) as url:
        yield url.replace("/captions", "/checkpoints")


def test_use_this_one_pins_the_checkpoint_in_the_recipe(browser, studio, project):
    recipe = project / "wan_lora.toml"
    before = recipe.read_text()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(studio)
    rows = page.locator("#eval-grid tr[id]")
    expect(rows).to_have_count(2)
    expect(page.locator("#eval-grid video")).to_have_count(4)  # 2 checkpoints x 2 strengths
    expect(page.locator("#plot circle")).to_have_count(2)
    expect(page.locator("#eval-grid tr.chosen")).to_have_count(1)
    page.locator("#play-all").click()
    expect(page.locator("#play-all")).to_have_text("Pause all")
    for video in page.locator("#eval-grid video").all():
        video.evaluate(SHOWS_A_FRAME)
    first = rows.first
    key = first.get_attribute("id").removeprefix("row-")
    first.get_by_role("button", name="use this one").click()
    expect(page.locator("#choice")).to_have_text(f"best_lora exports pinned: {key}")
    expect(first).to_have_class("chosen")
    assert recipe.read_text() == before.rstrip("\n") + f'\npin = "{key}"\n'
    first.get_by_role("button", name="captions that trained it").click()
    expect(page.locator("#lineage li").first).to_contain_text("demostyle")
    page.set_viewport_size({"width": 1400, "height": 1100})  # the plot, grid and lineage at once
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, project, "studio_checkpoints.png")
    context.close()
