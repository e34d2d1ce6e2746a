"""`[training]`: the engine, the model and its task, the network and its schedule."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from wan_lora_dagster.fingerprints import fingerprint
from wan_lora_dagster.recipe.section import Section
from wan_lora_dagster.tasks import DEFAULT_TASK, TASKS, wan_task

TINY_MODEL = "tiny"


class TrainingSettings(Section):
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
