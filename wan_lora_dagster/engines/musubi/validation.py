"""The held-out loss of musubi-tuner's checkpoints, computed in this process.

musubi-tuner has no validation loss (no script computes one on held-out caches, commit 30c658c),
so our evaluator loads `[training] dit` into diffusers once per engine and measures each LoRA
file with the diffusers engine's own math: fixed noise and timesteps over the held-out caches,
which musubi wrote in the format both engines share. The LoRA's musubi key names are converted
by diffusers' Wan LoRA loader. Imports torch and diffusers: imported only when a loss is asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from wan_lora_dagster.engines.musubi.single_file import load_transformer
from wan_lora_dagster.engines.validation import validation_loss
from wan_lora_dagster.engines.wan_models import compute_dtype, pick_device
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.formats.manifest import TrainingSetManifest
from wan_lora_dagster.recipe.training import TrainingSettings

logger = logging.getLogger(__name__)


@dataclass
class SingleFileModel:
    """engines.validation.ForwardModel over a DiT loaded from one file."""

    transformer: WanTransformer3DModel
    device: torch.device
    dtype: torch.dtype


class MusubiEvaluator:
    """The base DiT of a musubi project, loaded on first use and kept for every checkpoint."""

    def __init__(self, settings: TrainingSettings, work_dir: Path):
        self.settings = settings
        self.work_dir = work_dir
        self._model: SingleFileModel | None = None

    @property
    def model(self) -> SingleFileModel:
        if self._model is None:
            device = pick_device(None)
            dtype = compute_dtype(device, self.settings.mixed_precision)
            dit = Path(self.settings.dit).expanduser()
            logger.info("loading %s for the validation loss (fp8: %s)", dit, self.settings.fp8_base)
            try:
                transformer = load_transformer(
                    dit, self.work_dir / "dit-config", dtype, self.settings.fp8_base
                )
            except (RuntimeError, ValueError, OSError) as error:  # shapes, memory, the file
                raise EngineError(
                    f"{dit}: cannot load it for the validation loss: {error}"
                ) from error
            self._model = SingleFileModel(transformer, device, dtype)
        return self._model

    def loss(self, checkpoint: Path | None, manifest: TrainingSetManifest) -> float:
        """On the GPU only while measuring: between checkpoints musubi's wan_generate_video,
        another process, needs the card for the next eval videos."""
        model = self.model
        model.transformer.to(model.device)
        try:
            return validation_loss(model, checkpoint, manifest)
        finally:
            model.transformer.to("cpu")
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
