"""The `musubi` engine: kohya-ss/musubi-tuner's Wan 2.1 scripts as subprocesses."""

from wan_lora_dagster.engines.musubi.engine import MusubiEngine, format_commands
from wan_lora_dagster.engines.musubi.process import EngineCancelled

__all__ = ["EngineCancelled", "MusubiEngine", "format_commands"]
