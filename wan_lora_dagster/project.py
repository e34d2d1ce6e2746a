"""`wan_lora.toml` -> a typed, validated recipe, and the layout of a user's project folder.

Errors name the file, the key and the line, because the user wrote that file by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.problems import Problems, read_text
from wan_lora_dagster.tasks import DEFAULT_TASK, TASKS, takes_start_images, wan_task

CONFIG_NAME = "wan_lora.toml"
FILM_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TINY_MODEL = "tiny"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# json.dumps with these options builds a new encoder per call; a sync fingerprints 60,000 items
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def fingerprint(*parts: object) -> str:
    """A short, stable hash of JSON-serialisable parts: the unit of every data version here."""
    blob = _FINGERPRINT_JSON.encode(parts)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class DatasetSection(_Section):
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


class CaptionSettings(_Section):
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


class TrainingSettings(_Section):
    engine: Literal["diffusers", "musubi"] = "diffusers"
    task: str = Field(DEFAULT_TASK, description="a Wan task of the task table (tasks.TASKS)")
    model: str = Field(TINY_MODEL, description="'tiny', or a diffusers-format Wan folder")
    experts: tuple[Literal["high", "low"], ...] | None = Field(
        None, description="Wan 2.2 A14B: the experts to train a LoRA for (default both)"
    )
    timestep_boundary: float | None = Field(
        None, gt=0, lt=1, description="A14B: t where the experts switch (default: the model's)"
    )
    i2v: bool = Field(False, description="ti2v-5B: train image-to-video from each first frame")
    dit: str | None = None
    dit_high_noise: str | None = None
    vae: str | None = None
    t5: str | None = None
    clip: str | None = None
    tokenizer: str | None = None
    musubi_dir: str | None = None
    network: Literal["lora", "lokr", "loha", "full"] = Field(
        "lora",
        description="the trained network: a LoRA, LyCORIS LoKr or LoHa (engines.adapters), or "
        "'full': a full fine-tune of the transformer (diffusers engine)",
    )
    dora: bool = Field(False, description="weight-decomposed LoRA (DoRA); network = 'lora' only")
    full_blocks: tuple[int, ...] | None = Field(
        None, description="network = 'full': the blocks trained (default: every linear weight)"
    )
    full_dtype: Literal["fp32", "bf16"] = Field(
        "fp32", description="network = 'full': the trained weights' dtype (bf16 halves memory)"
    )
    network_dim: int = Field(32, ge=1)
    network_alpha: float = Field(32.0, gt=0)
    network_args: tuple[str, ...] = ()
    learning_rate: float = Field(2e-4, gt=0)
    optimizer: str = "adamw"
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = Field(0, ge=0)
    max_train_epochs: int = Field(16, ge=1)
    max_train_steps: int | None = Field(None, ge=1)
    timestep_sampling: Literal[
        "shift", "sigma", "uniform", "sigmoid",
        "logit_normal", "logsnr", "flux_shift", "qinglong_flux", "qinglong_qwen",
    ] = "shift"  # fmt: skip
    discrete_flow_shift: float = Field(3.0, gt=0)
    logit_mean: float = Field(0.0, description="logit_normal, logsnr, qinglong_*: the mean")
    logit_std: float = Field(1.0, gt=0, description="logit_normal, logsnr, qinglong_*: the std")
    min_timestep: int | None = Field(None, ge=0, le=999, description="train on t*1000 >= this")
    max_timestep: int | None = Field(None, ge=1, le=1000, description="train on t*1000 <= this")
    caption_dropout_rate: float = Field(
        0.0, ge=0, le=1, description="share of samples trained on the empty caption"
    )
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="keep an EMA of the trained weights with this decay"
    )
    ema_device: Literal["gpu", "cpu"] = Field("gpu", description="where the EMA copy lives")
    fp8_base: bool = False
    fp8_scaled: bool = False
    fp8_t5: bool = False
    fp8_compute: bool = Field(
        False, description="diffusers: the frozen base linears compute in fp8 (GPUs of 8.9+)"
    )
    blocks_to_swap: int = Field(0, ge=0)
    gradient_checkpointing: bool = True
    gradient_checkpointing_cpu_offload: bool = False
    compile: bool = Field(False, description="torch.compile each transformer block (diffusers)")
    attention: Literal["sdpa", "flash", "xformers"] = "sdpa"
    mixed_precision: Literal["bf16", "fp16", "no"] = "bf16"
    save_every_n_epochs: int | None = Field(None, ge=1)
    save_every_n_steps: int | None = Field(None, ge=1)
    seed: int = 42
    gpus: Annotated[int, Field(ge=1)] | Literal["all"] = Field(
        1, description="data-parallel over this many GPUs of the machine, or 'all'"
    )
    schedule: str = Field("0 3 * * *", description="cron of the retraining schedule")

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
        return task

    @model_validator(mode="after")
    def _experts_of_task(self) -> TrainingSettings:
        if self.experts is not None and not wan_task(self.task).experts:
            two_experts = " and ".join(name for name, task in TASKS.items() if task.experts)
            raise ValueError(
                f"experts is for the two-expert Wan 2.2 tasks {two_experts}, not {self.task}"
            )
        if self.experts is not None and (
            not self.experts or len(set(self.experts)) < len(self.experts)
        ):
            raise ValueError('experts: list "high", "low" or both, each once')
        return self

    @model_validator(mode="after")
    def _timestep_range(self) -> TrainingSettings:
        low, high = self.min_timestep or 0, self.max_timestep or 1000
        if low >= high:
            raise ValueError(f"min_timestep ({low}) must be below max_timestep ({high})")
        return self

    @model_validator(mode="after")
    def _full_fine_tune(self) -> TrainingSettings:
        """A full fine-tune's own settings, checked against the engine and the task."""
        if self.network != "full":
            if self.full_blocks is not None or self.full_dtype != "fp32":
                raise ValueError("full_blocks and full_dtype are for network = 'full'")
            return self
        if self.engine == "musubi":
            raise ValueError(
                "network = 'full': musubi-tuner has no full fine-tune of Wan (its issue 939); "
                "use engine = 'diffusers', or train a LoRA"
            )
        task = wan_task(self.task)
        if task.experts:
            raise ValueError(f"network = 'full' trains one transformer; {self.task} has two")
        blocks = self.full_blocks
        if blocks is not None and (
            not blocks
            or len(set(blocks)) < len(blocks)
            or not set(blocks) <= set(range(task.num_blocks))
        ):
            raise ValueError(
                f"full_blocks: list block indices from 0 to {task.num_blocks - 1} "
                f"({self.task} has {task.num_blocks} blocks), each once, got {list(blocks)}"
            )
        return self

    @model_validator(mode="after")
    def _i2v_of_task(self) -> TrainingSettings:
        task = wan_task(self.task)
        if self.i2v and not task.image_to_video_option:
            takes = " and ".join(name for name, one in TASKS.items() if one.image_to_video_option)
            kind = "is image-to-video already" if task.image_to_video else "has no start image"
            raise ValueError(
                f"i2v = true is for {takes}, which trains either way; task {self.task} {kind}: "
                "remove i2v"
            )
        return self

    @model_validator(mode="after")
    def _dora_of_lora(self) -> TrainingSettings:
        if self.dora and self.network != "lora":
            raise ValueError(
                f"dora = true decomposes a LoRA's weights; network = {self.network!r} has no DoRA "
                'form: set network = "lora" or dora = false'
            )
        return self

    def settings_fingerprint(self) -> str:
        """What a trained LoRA depends on besides its training set (not the schedule)."""
        # Wan 2.2 settings left unset and newer settings at their defaults stay out, so an
        # older project's checkpoints stay current.
        unset = {name for name in _WAN22_SETTINGS if getattr(self, name) is None}
        unset |= {name for name, off in _ADDED_OFF.items() if getattr(self, name) == off}
        return fingerprint(self.model_dump(exclude={"schedule", *unset}))


_WAN22_SETTINGS = ("experts", "timestep_boundary", "dit_high_noise")
# settings added later, left out while off so that earlier checkpoints stay current
_ADDED_OFF = {
    "fp8_compute": False,
    "logit_mean": 0.0,
    "logit_std": 1.0,
    "min_timestep": None,
    "max_timestep": None,
    "caption_dropout_rate": 0.0,
    "ema_decay": None,
    "ema_device": "gpu",
    "network": "lora",
    "full_blocks": None,
    "full_dtype": "fp32",
    "dora": False,
    "i2v": False,
}


class WalkSettings(_Section):
    """A latent walk: `steps` videos whose initial noise goes from one seed's to the other's."""

    seeds: tuple[int, int]
    steps: int = Field(5, ge=2)


class EvalSettings(_Section):
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


class Recipe(_Section):
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


@dataclass(frozen=True)
class Project:
    """A user's LoRA project folder: where every input lives and every output goes."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @cached_property
    def recipe(self) -> Recipe:
        return load_recipe(self.config_path)

    films_dir = property(lambda self: self.root / "films")
    ranges_dir = property(lambda self: self.root / "ranges")
    stills_dir = property(lambda self: self.root / "stills")
    captions_dir = property(lambda self: self.root / "captions")
    out_dir = property(lambda self: self.root / "out")
    dagster_home = property(lambda self: self.root / ".dagster")

    def out(self, *parts: str) -> Path:
        return self.out_dir.joinpath(*parts)

    def stills(self) -> dict[str, Path]:
        """Still stem (its id) -> path, for every image in stills/."""
        return _files_by_stem(self.stills_dir, STILL_SUFFIXES)


def _files_by_stem(directory: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    # Hidden names (macOS "._x.png" resource forks) are no media and cannot name a partition.
    found = sorted(
        p
        for p in directory.iterdir()
        if p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith(".")
    )
    return {path.stem: path for path in found}


def open_project(root: str | Path) -> Project:
    project = Project(Path(root).resolve())
    if not project.config_path.is_file():
        raise ConfigError(
            f"{project.config_path}: not found. Create a project with `wan-lora init {root}`."
        )
    return project


def find_project(start: Path) -> Path:
    """The nearest folder at or above `start` that holds a wan_lora.toml, as git finds its
    repository; ConfigError naming `start` when there is none."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_NAME} in {start} or any folder above it: run this inside a project, "
        "give --project DIR, or create a project with `wan-lora init DIR`"
    )


def load_recipe(path: Path) -> Recipe:
    """The recipe, or a ConfigError listing every problem of the file with its line."""
    problems = Problems()
    recipe = read_recipe(path, problems)
    problems.raise_errors()
    return recipe


def read_recipe(path: Path, problems: Problems) -> Recipe | None:
    """The recipe, or None with every problem of the file (each with its line) in `problems`."""
    text = read_text(path, problems)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems.error(path, _toml_error_line(error, text), f"not valid TOML: {error}")
        return None
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        _describe(error, path, text, problems)
        return None


def _toml_error_line(error: tomllib.TOMLDecodeError, text: str) -> int:
    """tomllib (Python 3.11) says where only in its message: `(at line 3, column 5)`."""
    found = re.search(r"at line (\d+)", str(error))
    return int(found[1]) if found else text.count("\n") + 1  # "at end of document"


def _describe(error: ValidationError, path: Path, text: str, problems: Problems) -> None:
    for issue in error.errors():
        location = tuple(part for part in issue["loc"] if not isinstance(part, str) or part)
        key = ".".join(str(part) for part in location) or "(top level)"
        reason = "unknown key" if issue["type"] == "extra_forbidden" else issue["msg"]
        # a missing key has no line of its own: its table's header, else the top of the file
        problems.error(path, _line_of(text, location) or 1, f"{key}: {reason}")


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _line_of(text: str, location: tuple) -> int | None:
    """The 1-based line where a pydantic error location is written (best effort)."""
    table: tuple = ()
    array_counts: dict[str, int] = {}
    best = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = header.group(2)
            if header.group(1) == "[[":
                array_counts[name] = array_counts.get(name, -1) + 1
                table = (name, array_counts[name])
            else:
                table = (name,)
            if location[: len(table)] == table:
                best = best or number
            continue
        key = _KEY.match(line)
        if key and (*table, key.group(1)) == location[: len(table) + 1]:
            return number
    return best
