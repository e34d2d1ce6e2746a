"""Dagster's asset pages link the studio's page for the asset, at the address `wan-lora ui` gave
the Dagster process it started (the definitions read it as they load: a fresh process here)."""

import json
import os
import subprocess
import sys

from wan_lora_dagster.assets.declared import STUDIO_ENV
from wan_lora_dagster.scaffold import init_project

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
