"""The studio's first screen at 30,000 clips: the captions page served and rendered in Chromium.

The project is made as benchmarks/scale.py makes its big one (30,000 ranges, a hand caption
each; no clip cut, so posters answer "not made yet" and the cards show their captions). Timed
twice from a fresh studio: the first page load, asked as soon as the studio listens (Chromium is
started before the studio, so that its start-up does not hide the studio's first read), then a
reload (what the studio read kept): from navigation to a page of cards on screen.

    .venv/bin/python benchmarks/studio.py [--clips N]
"""

from __future__ import annotations

import argparse
import socket
import time

from _common import machine_load, print_machine, scratch_dir
from playwright.sync_api import sync_playwright
from scale import FILM_SECONDS, FILM_SIZE, build_project

from wan_lora_dagster.media.synthetic import make_synthetic_film
from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.app import PAGE_SIZE
from wan_lora_dagster.studio.server import start_studio

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def first_screen_seconds(page, url: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    page.locator(".card").nth(PAGE_SIZE - 1).wait_for(timeout=600_000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=30_000)
    clips = parser.parse_args().clips
    load_at_start = machine_load()
    with scratch_dir("studio") as scratch:
        film = make_synthetic_film(
            scratch / "film.mp4", duration=FILM_SECONDS, size=FILM_SIZE, num_scenes=4, seed=1
        )
        project = open_project(build_project(scratch / "big", film, clips))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page()
            url, server = start_studio(project, "127.0.0.1", port, "")
            while not server.started:
                time.sleep(0.01)
            first = first_screen_seconds(page, url)
            again = first_screen_seconds(page, url)
            browser.close()
        server.should_exit = True
    print(f"captions page, first {PAGE_SIZE} of {clips} cards on screen in Chromium:")
    print(f"  a fresh studio, asked at once (waits for its first read): {first:.2f} s")
    print(f"  the page loaded again (the studio's index kept):         {again:.2f} s")
    print_machine(load_at_start)


if __name__ == "__main__":
    main()
