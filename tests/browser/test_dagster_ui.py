"""The Dagster UI in a real browser: the whole graph, a launch from the UI, a checkpoint's story.

Debian's Chromium (headless) driven by Playwright, against `wan-lora ui` serving the demo project.
Screenshots land in the project's out/screenshots/; with WAN_LORA_UPDATE_DOCS=1 the checkpoint
page also replaces docs/ui_checkpoint.png, the README's picture.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from wan_lora_dagster.pipeline.asset_table import ASSETS
from wan_lora_dagster.pipeline.catalog import load_catalog
from wan_lora_dagster.project import open_project

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = sync_api.expect

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "ui_checkpoint.png"
SERVER_START_SECONDS = 120
STOP_GRACE_SECONDS = 20
RUN_FINISH_SECONDS = 150
UI_TIMEOUT_MS = 60_000  # a cold code location on a 2-core machine takes a while to load
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
IMAGE_IS_LOADED = "img => img.complete && img.naturalWidth > 0"
SCROLL_TO_TOP = """element => {
  let pane = element.parentElement;
  while (pane.scrollHeight <= pane.clientHeight) pane = pane.parentElement;
  pane.scrollTop = 0;
}"""
CHECKPOINT_VIEWPORT = {"width": 2400, "height": 880}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The demo project, built and run to best_lora in this process."""
    from wan_lora_dagster.cli import main

    directory = tmp_path_factory.mktemp("browser") / "demo"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME", raising=False)  # the run points it at the demo: undo that
        assert main(["demo", str(directory)]) == 0
    (directory / "out" / "screenshots").mkdir()
    return directory


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    """`wan-lora ui` on a free port, in its own process group; the whole group dies at the end."""
    port = _free_port()
    log = (project / "out" / "ui.log").open("wb")
    command = [sys.executable, "-m", "wan_lora_dagster.cli", "ui", "--project", str(project)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--host", "127.0.0.1"],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, project / "out" / "ui.log")
        yield url
    finally:
        _stop_group(process)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server: str) -> Iterator:
    context = browser.new_context(base_url=server, viewport={"width": 1600, "height": 1000})
    # Dagster greets a first visit on 127.0.0.1 with a newsletter dialog over the page.
    context.add_init_script("window.localStorage.setItem('communityNux', '1')")
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    yield page
    context.close()


def test_asset_graph_shows_every_asset_of_the_design(page, project: Path):
    page.goto("/asset-groups")
    graph = page.locator("svg foreignObject")
    expect(graph.get_by_text("training", exact=True)).to_be_visible()
    page.keyboard.press("Alt+KeyE")  # "Expand all groups" (⌥E): many groups start collapsed
    for asset in (spec.name for spec in ASSETS):
        expect(graph.get_by_text(asset, exact=True)).to_be_visible()
    page.wait_for_load_state("networkidle")  # the nodes' materialization colours
    page.screenshot(path=_screenshot(project, "asset_graph"))


def test_materializing_one_clip_partition_from_the_ui_succeeds(page, project: Path, server: str):
    batch = load_catalog(open_project(project)).clip_batches.batch_of["drift"]
    page.goto("/assets/clips")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize clips")).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(batch)
    page.get_by_role("menuitem").filter(has_text=batch).click()
    page.keyboard.press("Escape")  # closes the partition menu, not the dialog
    expect(page.get_by_placeholder("Filter partitions")).to_be_hidden()
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    page.screenshot(path=_screenshot(project, "materialize_drift"))

    dialog.get_by_role("button", name="Launch 1 run").click()
    page.get_by_role("link", name="View", exact=True).click()  # in the "Launched run …" toast
    page.wait_for_url("**/runs/*")
    run_id = page.url.split("/runs/")[1].split("?")[0]

    run = _wait_for_run(server, run_id)
    assert run["status"] == "SUCCESS", f"run {run_id} ended {run['status']}: see the run page"
    assert [key["path"] for key in run["assetSelection"]] == [["clips"]]
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["dagster/partition"] == batch
    assert tags["dagster/from_ui"] == "true"
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {batch}")).to_be_visible()
    page.screenshot(path=_screenshot(project, "run_drift_success"))


def test_checkpoint_page_shows_its_captions_and_loss_curve(page, project: Path):
    checkpoint = _best_checkpoint(project)
    # Markdown opens in a dialog mid-page: this wide, short window keeps the table beside it.
    page.set_viewport_size(CHECKPOINT_VIEWPORT)
    page.goto(f"/assets/lora_checkpoints?view=partitions&partition={checkpoint}")
    captions = page.locator("table:has(> thead > tr > th:text-is('origin'))")
    expect(captions.locator("th")).to_have_text(["item", "origin", "version", "text"])
    rows = [row.locator("td").all_inner_texts() for row in captions.locator("tbody > tr").all()]
    assert {cells[0]: cells[1:] for cells in rows} == _caption_records(project)

    image = _open_markdown_image(page, "loss_curve")
    assert image.get_attribute("alt") == "loss curve"
    captions.evaluate(SCROLL_TO_TOP)  # opening the dialog scrolled the metadata to its end
    page.screenshot(path=_screenshot(project, "checkpoint"))
    _copy_for_readme(project, "checkpoint")


def test_eval_page_shows_the_contact_sheet(page, project: Path):
    checkpoint = _best_checkpoint(project)
    page.goto(f"/assets/eval_videos?view=partitions&partition={checkpoint}")
    expect(page.get_by_role("row").filter(has_text="validation_loss_without_lora")).to_be_visible()
    image = _open_markdown_image(page, "contact_sheet")
    assert image.get_attribute("alt") == f"eval of {checkpoint}"
    page.screenshot(path=_screenshot(project, "eval_contact_sheet"))


def _open_markdown_image(page, metadata_key: str):
    """Open a markdown metadata value (Dagster shows it in a dialog) and wait for its PNG."""
    row = page.get_by_role("row").filter(has_text=metadata_key)
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text=metadata_key)
    image = dialog.locator('img[src^="data:image/png"]')
    expect(image).to_have_count(1)
    page.wait_for_function(IMAGE_IS_LOADED, arg=image.element_handle())
    return image


def _best_checkpoint(project: Path) -> str:
    return json.loads((project / "out" / "records" / "best_lora" / "__all__.json").read_text())[
        "checkpoint"
    ]


def _caption_records(project: Path) -> dict[str, list[str]]:
    """clip -> [origin, version, text] from the captions stage's own records."""
    records = {}
    for path in sorted((project / "out" / "records" / "captions").glob("*.json")):
        record = json.loads(path.read_text())
        records[path.stem] = [record["origin"], record["data_version"], record["text"]]
    return records


def _screenshot(project: Path, name: str) -> str:
    return str(project / "out" / "screenshots" / f"{name}.png")


def _copy_for_readme(project: Path, name: str) -> None:
    if os.environ.get("WAN_LORA_UPDATE_DOCS") == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(_screenshot(project, name), README_SCREENSHOT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`wan-lora ui` exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{url}/server_info", timeout=5).close()
            return
        time.sleep(1)
    pytest.fail(f"`wan-lora ui` did not answer in {SERVER_START_SECONDS} s:\n{_tail(log)}")


def _stop_group(process: subprocess.Popen) -> None:
    """Ctrl-C the group, as a user would: `dagster dev` then stops its webserver, daemon and code
    server (SIGTERM would only end `wan-lora`); SIGKILL whatever is left after the grace time."""
    _signal_group(process, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while _group_alive(process) and time.monotonic() < deadline:
        process.poll()  # reap our own child so that it does not count as alive
        time.sleep(0.5)
    _signal_group(process, signal.SIGKILL)
    process.wait(timeout=10)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _group_alive(process: subprocess.Popen) -> bool:
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status tags { key value } assetSelection { path } }
  }
}
"""


def _wait_for_run(server: str, run_id: str) -> dict:
    """Poll GraphQL until the run ends: it goes through the daemon's queue first."""
    deadline = time.monotonic() + RUN_FINISH_SECONDS
    while True:
        run = _graphql(server, RUN_QUERY, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", f"no run {run_id}: {run}"
        if run["status"] in TERMINAL_RUN_STATUSES:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run['status']} after {RUN_FINISH_SECONDS} s")
        time.sleep(1)


def _graphql(server: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{server}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]
