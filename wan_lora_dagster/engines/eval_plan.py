"""Which eval videos a checkpoint gets, and their file names: the same for both engines.

Plain videos: every LoRA strength x prompt x start image (image-to-video only) x seed. A latent
walk (`[eval] walk`) adds `steps` videos of the first prompt (and first start image) whose initial
noise goes from its first seed's noise to its second's, at the walk strength: the largest strength
listed, which is the LoRA at full effect in the usual sweep [0, ..., 1], so the walk shows the
trained style rather than the base model.
"""

from __future__ import annotations

from dataclasses import dataclass

from wan_lora_dagster.engines.base import StartImage
from wan_lora_dagster.recipe.evaluation import EvalSettings


@dataclass(frozen=True)
class EvalJob:
    prompt_index: int
    prompt: str
    strength: float
    seed: int
    start_image: StartImage | None = None
    image_index: int | None = None
    walk_position: float | None = None
    walk_index: int | None = None

    @property
    def file_name(self) -> str:
        """e.g. `p00_strength0.75_seed42.mp4`, `p00_i01_strength1.00_seed42.mp4` (start image 1),
        `walk03_p00_strength1.00_seeds42-7.mp4`: sorts by prompt, image, strength, then seed."""
        image = "" if self.image_index is None else f"_i{self.image_index:02d}"
        strength = f"strength{self.strength:.2f}"
        if self.walk_index is None:
            return f"p{self.prompt_index:02d}{image}_{strength}_seed{self.seed}.mp4"
        return f"walk{self.walk_index:02d}_p{self.prompt_index:02d}{image}_{strength}.mp4"


def sample_video_name(prompt_index: int, strength: float, seed: int) -> str:
    """The file name of a plain text-to-video eval video."""
    return EvalJob(prompt_index, "", strength, seed).file_name


def walk_strength(settings: EvalSettings) -> float:
    return max(settings.strengths)


def plain_jobs(settings: EvalSettings, start_images: tuple[StartImage, ...] = ()) -> list[EvalJob]:
    """Every strength x prompt x start image x seed, in that nesting (strength outermost: an
    engine sets the LoRA strength once per group)."""
    images = list(enumerate(start_images)) or [(None, None)]
    return [
        EvalJob(prompt_index, prompt, strength, seed, image, image_index)
        for strength in settings.strengths
        for prompt_index, prompt in enumerate(settings.prompts)
        for image_index, image in images
        for seed in settings.seeds
    ]


def walk_jobs(settings: EvalSettings, start_images: tuple[StartImage, ...] = ()) -> list[EvalJob]:
    """The walk's videos, first seed to second, evenly spaced; none without `[eval] walk`."""
    walk = settings.walk
    if walk is None:
        return []
    image, image_index = (start_images[0], 0) if start_images else (None, None)
    last = walk.steps - 1
    return [
        EvalJob(
            0,
            settings.prompts[0],
            walk_strength(settings),
            walk.seeds[0] if index < last else walk.seeds[1],
            image,
            image_index,
            walk_position=index / last,
            walk_index=index,
        )
        for index in range(walk.steps)
    ]
