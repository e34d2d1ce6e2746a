"""`[eval]`: the videos sampled of every checkpoint, at which strengths, seeds and sizes."""

from __future__ import annotations

from pydantic import Field, field_validator

from wan_lora_dagster.recipe.section import Section


class WalkSettings(Section):
    """A latent walk: `steps` videos whose initial noise goes from one seed's to the other's."""

    seeds: tuple[int, int]
    steps: int = Field(5, ge=2)


class EvalSettings(Section):
    prompts: tuple[str, ...] = ("a short clip in the trained style",)
    negative_prompt: str = ""
    strengths: tuple[float, ...] = (0.0, 1.0)
    seeds: tuple[int, ...] = (42,)
    width: int = Field(64, ge=16, multiple_of=16)
    height: int = Field(64, ge=16, multiple_of=16)
    num_frames: int = Field(9, ge=1)
    num_inference_steps: int = Field(20, ge=1)
    guidance_scale: float = Field(5.0, ge=1.0)
    held_out: tuple[str, ...] = Field((), description="clip ids kept out of training")
    num_held_out: int = Field(1, ge=0, description="held-out clips picked when held_out is empty")
    pin: str | None = Field(None, description="checkpoint to export instead of the best one")
    images: tuple[str, ...] = Field(
        (), description="I2V start images (project-relative) besides the held-out first frames"
    )
    walk: WalkSettings | None = None
    use_ema: bool = Field(False, description="eval videos and validation on the EMA weights")

    @field_validator("prompts", "strengths", "seeds")
    @classmethod
    def _not_empty(cls, values: tuple) -> tuple:
        if not values:
            raise ValueError("must list at least one value, or eval would produce no video")
        return values

    @field_validator("num_frames")
    @classmethod
    def _four_n_plus_one(cls, num_frames: int) -> int:
        if (num_frames - 1) % 4:
            raise ValueError(f"Wan generates 4N+1 frames (1, 5, 9, 13, ...), got {num_frames}")
        return num_frames
