"""The studio's pages in Debian's Chromium (headless, driven by Playwright) on the demo project:
what a person does in a page lands in the caption and ranges files, and nothing else does.
Screenshots land in the project's out/screenshots/; with WAN_LORA_UPDATE_DOCS=1 they also
replace docs/studio_captions.png and docs/studio_ranges.png, the README's pictures."""

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

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's Chromium is not installed at {CHROMIUM}"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = sync_api.expect

OLD_TRIGGER = ("drift", "shapes_19000-21500")  # captions written with last year's trigger


@pytest.fixture(scope="module")
def project(tmp_path_factory, captioned_demo) -> Path:
    target = tmp_path_factory.mktemp("studio_page") / "demo"
    shutil.copytree(captioned_demo, target, symlinks=True)
    for clip in OLD_TRIGGER:
        (target / "captions" / f"{clip}.txt").write_text(f"oldstyle, shapes on {clip}\n")
    return target


@pytest.fixture(scope="module")
def studio(project) -> Iterator[str]:
    with serving(project, dagster="http://127.0.0.1:3000") as url:  # linked from each card
        yield url


@pytest.fixture
def page(browser, studio):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(studio)
    expect(page.locator(".card")).to_have_count(5)
    yield page
    context.close()


def card(page, clip_id: str):
    return page.locator(f'.card[data-id="{clip_id}"]')


def test_a_caption_edited_in_the_page_is_in_its_file(page, project):
    clip = card(page, "shapes_500-3000")
    clip.locator("textarea").fill("demostyle, a yellow disc drifts left")
    clip.locator("textarea").press("Control+Enter")
    expect(clip.locator(".note")).to_have_text("saved")
    expect(clip.locator(".badges")).to_contain_text("edited")
    caption = project / "captions" / "shapes_500-3000.txt"
    assert caption.read_text() == "demostyle, a yellow disc drifts left\n"


def test_an_editor_edit_while_the_page_is_open_is_shown_and_kept(page, project):
    caption = project / "captions" / "shapes_7000-9500.txt"
    caption.write_text("demostyle, typed in an editor\n")
    clip = card(page, "shapes_7000-9500")
    clip.locator("textarea").fill("demostyle, typed in the page")
    clip.locator(".save").click()
    expect(clip.locator(".conflict")).to_be_visible()
    expect(clip.locator(".conflict .disk")).to_have_text("demostyle, typed in an editor")
    assert caption.read_text() == "demostyle, typed in an editor\n"


def test_find_and_replace_previews_then_writes_exactly_the_matching_files(page, project):
    captions = project / "captions"
    before = {path.name: path.read_text() for path in captions.glob("*.txt")}
    page.locator("#find").fill("oldstyle")
    page.locator("#replace").fill("demostyle")
    page.locator("#preview-replace").click()
    expect(page.locator("#preview-list li")).to_have_count(len(OLD_TRIGGER))
    assert {path.name: path.read_text() for path in captions.glob("*.txt")} == before
    page.locator("#apply-replace").click()
    expect(page.locator("#preview")).to_be_hidden()
    expect(page.locator("#update-state")).to_have_text(f"replaced in {len(OLD_TRIGGER)} caption(s)")
    after = {path.name: path.read_text() for path in captions.glob("*.txt")}
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {f"{clip}.txt" for clip in OLD_TRIGGER}
    assert after["drift.txt"] == "demostyle, shapes on drift\n"
    page.set_viewport_size({"width": 1400, "height": 760})
    page.locator(".card img").first.evaluate("img => img.decode()")
    card(page, "drift").locator(".media").click()  # one clip playing, as a person would see it
    card(page, "drift").locator("video").evaluate(SHOWS_A_FRAME)
    screenshot(page, project, "studio_captions.png")


def test_a_range_added_on_the_timeline_is_one_new_line_of_its_file(browser, studio, project):
    ranges_file = project / "ranges" / "shapes.txt"
    before = ranges_file.read_text().split("\n")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(studio.replace("/captions", "/ranges"))
    expect(page.locator("#timeline .range")).to_have_count(5)
    expect(page.locator("#timeline .cut")).to_have_count(3)
    page.locator("#start").fill("22")
    page.locator("#end").fill("23.5")
    page.locator("#add").click()
    expect(page.locator("#timeline .range")).to_have_count(6)
    after = ranges_file.read_text().split("\n")
    assert [line for line in after if line not in before] == ["22 23.5"]
    page.locator("#end").fill("99")  # past the film's end: refused as the command line does
    page.locator("#add").click()
    expect(page.locator("#message")).to_contain_text("ends past the end of")
    assert ranges_file.read_text().split("\n") == after
    page.locator("#timeline .range").nth(2).click()
    expect(page.locator("#picked")).to_contain_text("drift")
    screenshot(page, project, "studio_ranges.png")
    context.close()
