"""Training engines: `diffusers` (in-process) and `musubi` (kohya-ss/musubi-tuner subprocesses)."""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.engines.base import Engine
from wan_lora_dagster.recipe.training import TrainingSettings


def create_engine(settings: TrainingSettings, out_dir: Path, device: str | None = None) -> Engine:
    """The engine `[training] engine` names; imported lazily, each pulls in heavy libraries."""
    if settings.engine == "musubi":
        from wan_lora_dagster.engines.musubi import MusubiEngine

        return MusubiEngine(settings, out_dir / "musubi")
    from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine

    return DiffusersEngine(settings, out_dir / "models", device=device)
