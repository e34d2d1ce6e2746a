"""Worker functions for the device-split tests, in a module a spawned process imports quickly."""

import os

from wan_lora_dagster.errors import EngineError


def who_did_it(device, share, progress) -> dict:
    """A worker that says which process handled each item."""
    return {item: (device, os.getpid()) for item in share}


def refuse(device, share, progress) -> dict:
    raise EngineError(f"no weights for {share}")
