"""`[[datasets]]` and `[captions]`: what the clips and stills are made into, and how each is
described."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.recipe.section import Section


class DatasetSection(Section):
    """One `[[datasets]]` section, named and shaped like musubi-tuner's dataset config."""

    name: str = ""
    source: Literal["clips", "stills"]
    resolution: tuple[int, int] = Field(description="bucket [width, height]")
    target_frames: tuple[int, ...] = (1,)
    frame_extraction: Literal["head", "chunk", "slide", "uniform", "full"] = "head"
    frame_sample: int = Field(1, ge=1)
    frame_stride: int = Field(1, ge=1)
    max_frames: int = Field(129, ge=1)
    num_repeats: int = Field(1, ge=1)
    batch_size: int = Field(1, ge=1)
    enable_bucket: bool = True
    bucket_no_upscale: bool = False

    @field_validator("resolution")
    @classmethod
    def _divisible_by_16(cls, resolution: tuple[int, int]) -> tuple[int, int]:
        if any(side < 16 or side % 16 for side in resolution):
            raise ValueError(
                f"each side must be a multiple of 16 and at least 16, got {resolution}"
            )
        return resolution

    @field_validator("target_frames")
    @classmethod
    def _positive_frames(cls, target_frames: tuple[int, ...]) -> tuple[int, ...]:
        if not target_frames or min(target_frames) < 1:
            raise ValueError("list at least one frame count, each 1 or more")
        return target_frames

    def settings_fingerprint(self) -> str:
        """What a latent of this section depends on besides its clip (not repeats or batch size)."""
        return fingerprint(self.model_dump(exclude={"num_repeats", "batch_size"}))


# Clips one generate call captions: 8 fill a GPU's matmuls for a 2-7B model while the vision
# tokens (a few hundred a clip) and the key-value cache stay within a few GiB.
DEFAULT_CAPTION_BATCH_SIZE = 8


class CaptionSettings(Section):
    captioner: Literal["blip2", "vlm", "none"] = "none"
    model: str | None = None
    prompt: str = "Describe this video clip in one sentence."
    frames_per_clip: int = Field(3, ge=1)
    max_new_tokens: int = Field(40, ge=1)
    batch_size: int = Field(
        DEFAULT_CAPTION_BATCH_SIZE, ge=1, description="clips captioned together on a device"
    )
    trigger: str = ""
    banned_words: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _model_for_captioner(self) -> CaptionSettings:
        if self.captioner != "none" and not self.model:
            raise ValueError(
                f"captioner '{self.captioner}' needs `model` (a local folder, or 'tiny')"
            )
        return self
