"""Worker functions for the device-split tests, in a module a spawned process imports quickly."""

import os
import signal

from wan_lora_dagster.errors import EngineError


def who_did_it(device, share, progress) -> dict:
    """A worker that says which process handled each item."""
    return {item: (device, os.getpid()) for item in share}


def refuse(device, share, progress) -> dict:
    raise EngineError(f"no weights for {share}")


def die_on_the_second_device(device, share, progress) -> dict:
    """The second worker is killed (as the out-of-memory killer would) mid-share."""
    if share == ["b"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return {item: device for item in share}
