"""The whole of `wan_lora.toml`, and the checks that span its sections."""

from __future__ import annotations

from pydantic import model_validator

from wan_lora_dagster.recipe.datasets import CaptionSettings, DatasetSection
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.recipe.section import Section
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import takes_start_images, wan_task


class Recipe(Section):
    """The whole of `wan_lora.toml`."""

    datasets: tuple[DatasetSection, ...]
    captions: CaptionSettings = CaptionSettings()
    training: TrainingSettings = TrainingSettings()
    eval: EvalSettings = EvalSettings()

    @model_validator(mode="after")
    def _unique_section_names(self) -> Recipe:
        named = [
            section.model_copy(update={"name": section.name or f"{section.source}_{index}"})
            for index, section in enumerate(self.datasets)
        ]
        names = [section.name for section in named]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"dataset section names must be unique, repeated: {duplicates}")
        object.__setattr__(self, "datasets", tuple(named))
        return self

    @model_validator(mode="after")
    def _eval_fits_training(self) -> Recipe:
        task = wan_task(self.training.task)
        if self.eval.images and not takes_start_images(task.name, self.training.i2v):
            raise ValueError(
                f"[eval] images are start images of an image-to-video LoRA; task "
                f"{self.training.task!r} takes none"
                + (" without [training] i2v = true" if task.image_to_video_option else "")
            )
        if self.eval.use_ema and self.training.ema_decay is None:
            raise ValueError(
                "[eval] use_ema evaluates the EMA weights, and [training] keeps none: set "
                "[training] ema_decay (0.999, say), or remove use_ema"
            )
        if self.eval.walk and self.training.engine == "musubi":
            raise ValueError(
                "[eval] walk needs the initial noise of each video, and musubi-tuner's "
                "wan_generate_video takes a seed only: remove walk, or use engine = 'diffusers'"
            )
        return self

    @model_validator(mode="after")
    def _i2v_frames_after_the_first(self) -> Recipe:
        """i2v trains the frames after the given first one: a sample needs 5 frames (2 latent)."""
        short = [
            f"'{s.name}'" for s in self.datasets if s.source == "stills" or min(s.target_frames) < 5
        ]
        if self.training.i2v and short:
            raise ValueError(
                "[training] i2v = true learns the frames after each sample's first, and "
                f"[[datasets]] {', '.join(short)} give single frames (stills, or target_frames "
                "under 5): remove those sections or list target_frames of 5 or more"
            )
        return self

    @model_validator(mode="after")
    def _sizes_of_task(self) -> Recipe:
        """TI2V-5B's VAE compresses 16x and its transformer patches 2x2: sides divide by 32."""
        step = wan_task(self.training.task).resolution_step
        sizes = [(f"[[datasets]] '{s.name}' resolution", s.resolution) for s in self.datasets]
        sizes.append(("[eval] width, height", (self.eval.width, self.eval.height)))
        wrong = [f"{where} {list(size)}" for where, size in sizes if any(v % step for v in size)]
        if wrong:
            raise ValueError(
                f"task {self.training.task} needs sides that are multiples of {step}: "
                + "; ".join(wrong)
            )
        return self

    def sections_for(self, source: str) -> tuple[DatasetSection, ...]:
        return tuple(section for section in self.datasets if section.source == source)
