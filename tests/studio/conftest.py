from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.app import create_app
from wan_lora_dagster.studio.security import Access
from wan_lora_dagster.testing.chromium import CHROMIUM, CHROMIUM_ARGS

STUDIO = "http://127.0.0.1"  # the address TestClient requests carry (base_url below)


@pytest.fixture(scope="session")
def studio_url() -> str:
    """The address TestClient requests carry, and the Origin of the studio's own page."""
    return STUDIO


@pytest.fixture
def demo(captioned_demo, copy_project) -> Path:
    """A copy of the demo made up to its captions (tests/conftest.py), this test's to change."""
    return copy_project(captioned_demo)


@pytest.fixture
def client(demo) -> TestClient:
    """The studio on this machine, as the page calls it: writes carry the studio's Origin."""
    app = create_app(open_project(demo), Access.for_bind("127.0.0.1", None))
    return TestClient(app, base_url=STUDIO, headers={"origin": STUDIO})


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright (the tests using it skip without)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is missing"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
