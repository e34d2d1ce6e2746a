"""Captioning split over several devices: each worker loads the captioner once (engines.devices).

Each batch of items is captioned as on one device (`make(catalog, keys, captioning)` writes their
caption files and records); a bad item fails alone and the worker goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from wan_lora_dagster.captioning.backends import load_captioner
from wan_lora_dagster.engines.base import Progress, ProgressCallback
from wan_lora_dagster.engines.devices import run_share, split_over_devices
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.pipeline.catalog import Catalog, load_catalog
from wan_lora_dagster.pipeline.dataset import (
    Captioning,
    CaptionRecord,
    captioner_settings,
    ensure_tiny_captioner,
)
from wan_lora_dagster.pipeline.parallel import in_batches
from wan_lora_dagster.project import open_project

MakeCaptions = Callable[[Catalog, list[str], Captioning], dict[str, CaptionRecord | UserError]]


def caption_on_devices(
    project_root: Path,
    keys: Sequence[str],
    make: MakeCaptions,
    devices: Sequence[str],
    progress: ProgressCallback,
) -> tuple[dict[str, CaptionRecord], dict[str, str]]:
    """Returns (records, failures) by item, as a one-device captions step gets them."""
    project = open_project(project_root)
    settings = project.recipe.captions
    if settings.model == "tiny":
        ensure_tiny_captioner(project, settings.captioner)  # once, before the workers load it
    work = run_share(_caption_share, str(project_root), make)
    outcomes = split_over_devices(devices, list(keys), work, progress)
    records = {key: value for key, (made, value) in outcomes.items() if made}
    failures = {key: value for key, (made, value) in outcomes.items() if not made}
    return records, failures


def _caption_share(device, keys, progress, project_root, make) -> dict[str, tuple[bool, object]]:
    catalog = load_catalog(open_project(project_root))
    settings = catalog.project.recipe.captions
    config = captioner_settings(catalog.project, settings, device)
    captioning = Captioning(settings, config, load_captioner(config))
    outcomes: dict[str, tuple[bool, object]] = {}
    for batch in in_batches(list(keys), config.batch_size):
        try:
            made = make(catalog, batch, captioning)
        except UserError as error:
            made = dict.fromkeys(batch, error)
        for key, result in made.items():
            failed = isinstance(result, UserError)
            outcomes[key] = (not failed, str(result) if failed else result)
        progress(Progress("captions", len(outcomes), len(keys)))
    return outcomes
