"""Dagster's asset pages link the studio's page for the asset, at the address `wan-lora ui` gave
the Dagster process it started (the definitions read it as they load: a fresh process here)."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from wan_lora_dagster.assets.declared import STUDIO_ENV
from wan_lora_dagster.scaffold import init_project
from wan_lora_dagster.testing.dagster_ui import (
    START_SECONDS,
    STOP_SECONDS,
    wait_until_it_answers,
    webserver_says_it_serves,
)
from wan_lora_dagster.testing.processes import default_signals
from wan_lora_dagster.testing.servers import free_port

STUDIO = "http://127.0.0.1:3001"
# what the definitions' metadata says of each asset, as a Dagster process loads them
READ_LINKS = """
import json
import dagster as dg
from wan_lora_dagster.definitions import defs
graph = defs.resolve_asset_graph()
links = {}
for key in graph.get_all_asset_keys():
    link = graph.get(key).metadata.get("studio")
    links[key.to_user_string()] = link.url if isinstance(link, dg.UrlMetadataValue) else None
print(json.dumps(links))
"""


def links_as_dagster_loads_them(project, studio: str | None) -> dict[str, str | None]:
    env = {**os.environ, "WAN_LORA_PROJECT": str(project)}
    env.pop(STUDIO_ENV, None)
    if studio is not None:
        env[STUDIO_ENV] = studio
    done = subprocess.run(
        [sys.executable, "-c", READ_LINKS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_captions_ranges_and_checkpoints_assets_link_their_studio_page(tmp_path):
    links = links_as_dagster_loads_them(init_project(tmp_path / "project"), STUDIO)
    assert links["captions"] == links["caption_files"] == f"{STUDIO}/captions"
    assert links["still_captions"] == f"{STUDIO}/captions"
    assert links["clip_ranges"] == links["films"] == f"{STUDIO}/ranges"
    assert links["lora_checkpoints"] == links["eval_videos"] == f"{STUDIO}/checkpoints"
    assert links["best_lora"] == f"{STUDIO}/checkpoints"
    assert links["text_cache"] is None  # no page shows a cache


def test_without_a_studio_no_asset_links_one(tmp_path):
    links = links_as_dagster_loads_them(init_project(tmp_path / "project"), None)
    assert set(links.values()) == {None}


@pytest.mark.slow  # starts `wan-lora ui`: Dagster's webserver and daemon
def test_the_dagster_ui_that_wan_lora_ui_starts_links_its_studio(tmp_path):
    project = init_project(tmp_path / "project")
    port, studio_port = free_port(), free_port()
    command = [sys.executable, "-m", "wan_lora_dagster.cli", "ui", "--project", str(project)]
    command += ["--port", str(port), "--studio-port", str(studio_port)]
    ui = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        assert webserver_says_it_serves(ui, port).wait(START_SECONDS), (
            "the UI did not say it serves"
        )
        wait_until_it_answers(port)
        query = json.dumps({"query": ASSET_URLS}).encode()
        asked = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql", query, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(asked, timeout=120) as answer:
            nodes = json.load(answer)["data"]["assetNodes"]
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=STOP_SECONDS)
    links = {
        entry["url"]
        for node in nodes
        for entry in node["metadataEntries"]
        if entry["label"] == "studio"
    }
    assert links == {f"http://127.0.0.1:{studio_port}/captions"}


# the captions asset's metadata as Dagster's UI asks for it
ASSET_URLS = """{ assetNodes(assetKeys: [{path: ["captions"]}]) {
  metadataEntries { label ... on UrlMetadataEntry { url } } } }"""
