"""Command lines for musubi-tuner's four Wan scripts, and the settings they refuse, checked first.

Every option is as musubi-tuner's parsers define it at commit 30c658c:
`training/parser_common.py` (training options shared by all architectures),
`wan_train_network.py:wan_setup_parser` (--task, --fp8_scaled, --t5, --fp8_t5, --clip),
`cache_latents.py:setup_parser_common` + `wan_cache_latents.py` (--vae, --clip, --keep_cache),
`cache_text_encoder_outputs.py` + `wan_cache_text_encoder_outputs.py` (--t5, --fp8_t5),
`wan_generate_video.py:parse_args` (--lora_weight, --lora_multiplier, --from_file, --attn_mode...).
"""

from __future__ import annotations

import struct
from pathlib import Path

from wan_lora_dagster.engines.experts import timestep_boundary
from wan_lora_dagster.engines.musubi.checkpoints import read_safetensors_header
from wan_lora_dagster.engines.musubi.experts import (
    expert_dit,
    expert_generation_args,
    expert_problems,
)
from wan_lora_dagster.engines.musubi.resume import SegmentOptions
from wan_lora_dagster.engines.musubi.timestep_args import timestep_args, unsupported_modes
from wan_lora_dagster.errors import ConfigError, EngineError
from wan_lora_dagster.formats.adapter_keys import NETWORK_MODULES
from wan_lora_dagster.formats.expert_lora import lora_experts
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import wan_task

# WanModel.enable_block_swap asserts blocks_to_swap <= num_blocks - 1 (wan/modules/model.py).
BLOCKS_KEPT_ON_GPU = 1
TRAINING_ATTENTION_FLAGS = {"sdpa": "--sdpa", "flash": "--flash_attn", "xformers": "--xformers"}
GENERATION_ATTENTION_MODES = {"sdpa": "torch", "flash": "flash", "xformers": "xformers"}
ATTENTION_MODULES = {"flash": "flash_attn", "xformers": "xformers"}
# musubi's default is 8; latents are cached, so loading is cheap (docs/wan.md uses 2).
DATA_LOADER_WORKERS = 2
# musubi's detect_wan_sd_dtype reads this tensor's dtype (1.3B files are prefixed, 14B are not).
_DTYPE_KEYS = ("model.diffusion_model.blocks.0.cross_attn.k.weight", "blocks.0.cross_attn.k.weight")


def check_settings(settings: TrainingSettings) -> None:
    """Refuse, before any work, what musubi-tuner would refuse only after loading its models."""
    refused = expert_problems(settings)
    if refused:
        raise ConfigError("wan_lora.toml: [training]: " + "; ".join(refused))
    problems = unsupported_modes(settings)
    if settings.fp8_scaled and not settings.fp8_base:
        # trainer_base.py: assert not args.fp8_scaled or args.fp8_base
        problems.append("fp8_scaled = true needs fp8_base = true (scaling applies to fp8 weights)")
    if settings.fp8_compute:
        problems.append(
            "fp8_compute = true is a diffusers-engine option (musubi-tuner's training computes in "
            "bf16): set engine = 'diffusers', or fp8_compute = false"
        )
    task = wan_task(settings.task)
    most = task.num_blocks - BLOCKS_KEPT_ON_GPU
    if settings.blocks_to_swap > most:
        problems.append(
            f"blocks_to_swap = {settings.blocks_to_swap}: {settings.task} has "
            f"{task.num_blocks} blocks and musubi keeps at least one on the GPU, so "
            f"at most {most}"
        )
    if task.clip and not settings.clip:
        problems.append(
            f"task {settings.task} needs clip = the CLIP checkpoint (models_clip_open-clip-xlm-"
            "roberta-large-vit-huge-14.pth): its caches hold CLIP features"
        )
    if settings.lr_scheduler == "constant" and settings.lr_warmup_steps:
        # trainer_base.get_lr_scheduler: "constant does not require `num_warmup_steps`"
        problems.append(
            "lr_scheduler 'constant' takes no lr_warmup_steps; use 'constant_with_warmup'"
        )
    if settings.dora:
        problems.append(
            "dora = true: musubi-tuner (commit 30c658c) has no DoRA (its networks are lora_wan, "
            "lokr and loha); use engine = 'diffusers' or dora = false"
        )
    problems += [
        f"network_args entry {entry!r} must be one key=value (musubi splits it on '=')"
        for entry in settings.network_args
        if entry.count("=") != 1
    ]
    if problems:
        raise ConfigError("wan_lora.toml: [training]: " + "; ".join(problems))


def check_dit_precision(settings: TrainingSettings, dit: Path) -> None:
    """musubi's wan_train_network refuses a DiT dtype that does not match the mixed precision."""
    dtype = dit_dtype(dit)
    allowed = {"BF16": ("bf16", "no"), "F16": ("fp16", "no")}.get(dtype)
    if allowed and settings.mixed_precision not in allowed:
        raise ConfigError(
            f"wan_lora.toml: [training] mixed_precision = {settings.mixed_precision!r}, but {dit} "
            f"holds {dtype} weights: use mixed_precision = {allowed[0]!r}"
        )
    if dtype.startswith("F8") and settings.fp8_scaled:
        raise ConfigError(
            f"wan_lora.toml: [training] fp8_scaled = true, but {dit} is already fp8 ({dtype}): "
            "use its bf16 or fp16 release, or set fp8_scaled = false"
        )


def dit_dtype(path: Path) -> str:
    """The safetensors dtype ("BF16", "F16", "F8_E4M3"...) of the DiT, from its header only."""
    try:
        _, header = read_safetensors_header(path)
    except (OSError, ValueError, struct.error) as error:
        raise EngineError(f"{path}: not a readable safetensors DiT file ({error})") from None
    for key in _DTYPE_KEYS:
        if key in header:
            return header[key]["dtype"]
    raise EngineError(f"{path}: not a Wan 2.1 DiT (no tensor {_DTYPE_KEYS[1]})")


def latent_cache_args(settings: TrainingSettings, dataset_config: Path) -> list[str]:
    """--keep_cache always: our lists name only the items to encode, and without it musubi deletes
    every other cache in their folders (cache_latents.encode_datasets)."""
    arguments = ["--dataset_config", str(dataset_config), "--vae", _path(settings.vae)]
    task = wan_task(settings.task)
    if task.clip:
        arguments += ["--clip", _path(settings.clip)]
    elif task.image_to_video:  # no CLIP in Wan 2.2: say I2V (the first frame's latents)
        arguments.append("--i2v")
    return [*arguments, "--keep_cache"]


def text_cache_args(settings: TrainingSettings, dataset_config: Path) -> list[str]:
    """--keep_cache for the same reason (cache_text_encoder_outputs.post_process_cache_files)."""
    arguments = ["--dataset_config", str(dataset_config), "--t5", _path(settings.t5)]
    if settings.fp8_t5:
        arguments.append("--fp8_t5")
    return [*arguments, "--keep_cache"]


def training_args(
    settings: TrainingSettings,
    dataset_config: Path,
    output_dir: Path,
    output_name: str,
    segment: SegmentOptions,
    log_dir: Path | None = None,
    expert: str | None = None,
    timestep_range: tuple[float, float] = (0.0, 1.0),
) -> list[str]:
    """Every [training] option musubi's wan_train_network takes; --save_state for resuming;
    TensorBoard events under log_dir (musubi adds a folder per launch, named by its time).

    expert: the Wan 2.2 expert this run trains, on its timestep_range (musubi/experts.py), cut
    to min_timestep / max_timestep (musubi/timestep_args.py)."""
    arguments = [
        "--task", musubi_task(settings),
        "--dit", _path(expert_dit(settings, expert)),
        "--dataset_config", str(dataset_config),
        TRAINING_ATTENTION_FLAGS[settings.attention],
        "--mixed_precision", settings.mixed_precision,
        *_memory_args(settings),
        "--network_module", NETWORK_MODULES[settings.network],
        "--network_dim", str(settings.network_dim),
        "--network_alpha", repr(settings.network_alpha),
        *(["--network_args", *settings.network_args] if settings.network_args else []),
        "--optimizer_type", settings.optimizer,
        "--learning_rate", repr(settings.learning_rate),
        "--lr_scheduler", settings.lr_scheduler,
        "--lr_warmup_steps", str(settings.lr_warmup_steps),
        *timestep_args(settings, timestep_range),
        *_length_args(segment),
        "--max_data_loader_n_workers", str(DATA_LOADER_WORKERS),
        "--persistent_data_loader_workers",
        "--seed", str(settings.seed),
        "--save_state",
        "--output_dir", str(output_dir),
        "--output_name", output_name,
    ]  # fmt: skip
    if settings.gradient_checkpointing:
        arguments.append("--gradient_checkpointing")
    if segment.resume_state is not None:
        arguments += ["--resume", str(segment.resume_state)]
    if log_dir is not None:
        arguments += ["--log_with", "tensorboard", "--logging_dir", str(log_dir)]
    return arguments


def generation_args(
    settings: TrainingSettings,
    evaluation: EvalSettings,
    prompt_file: Path,
    save_dir: Path,
    lora: Path | None,
    strength: float,
) -> list[str]:
    """One wan_generate_video run over a prompt file; no LoRA at all for strength 0."""
    arguments = [
        "--task", musubi_task(settings),
        "--dit", _path(settings.dit),
        "--vae", _path(settings.vae),
        "--t5", _path(settings.t5),
        *(["--clip", _path(settings.clip)] if wan_task(settings.task).clip else []),
        "--attn_mode", GENERATION_ATTENTION_MODES[settings.attention],
        *(["--fp8"] if settings.fp8_base else []),
        *(["--fp8_scaled"] if settings.fp8_scaled else []),
        *(["--fp8_t5"] if settings.fp8_t5 else []),
        *(["--blocks_to_swap", str(settings.blocks_to_swap)] if settings.blocks_to_swap else []),
        "--video_size", str(evaluation.height), str(evaluation.width),
        "--video_length", str(evaluation.num_frames),
        "--infer_steps", str(evaluation.num_inference_steps),
        "--guidance_scale", repr(evaluation.guidance_scale),
        *(["--negative_prompt", evaluation.negative_prompt] if evaluation.negative_prompt else []),
        "--cpu_noise",  # noise from a CPU generator: a seed gives the same video on any GPU
        "--output_type", "video",
        "--from_file", str(prompt_file),
        "--save_path", str(save_dir),
    ]  # fmt: skip
    two_experts = wan_task(settings.task).experts and lora is not None and strength != 0
    experts = lora_experts(lora) if two_experts else {}
    boundary = timestep_boundary(settings)
    arguments += expert_generation_args(settings, experts, strength, boundary)
    if lora is not None and strength != 0 and not experts:
        arguments += ["--lora_weight", str(lora), "--lora_multiplier", repr(strength)]
    return arguments


def musubi_task(settings: TrainingSettings) -> str:
    """musubi's --task name of the recipe's task (check_settings refuses one musubi lacks)."""
    return wan_task(settings.task).musubi_task or settings.task


def accelerate_launch(
    python: str, mixed_precision: str, script: Path, arguments: list[str], gpus: int = 1
) -> list[str]:
    """`accelerate launch` as musubi's docs run training, on `gpus` processes of this machine
    (data-parallel: each step trains a batch on each GPU)."""
    return [
        python, "-m", "accelerate.commands.launch",
        "--num_cpu_threads_per_process", "1",
        *(["--multi_gpu"] if gpus > 1 else []),
        "--num_processes", str(gpus),
        "--num_machines", "1",
        "--dynamo_backend", "no",
        "--mixed_precision", mixed_precision,
        str(script),
        *arguments,
    ]  # fmt: skip


def _memory_args(settings: TrainingSettings) -> list[str]:
    arguments = []
    if settings.fp8_base:
        arguments.append("--fp8_base")
    if settings.fp8_scaled:
        arguments.append("--fp8_scaled")
    if settings.blocks_to_swap:
        arguments += ["--blocks_to_swap", str(settings.blocks_to_swap)]
    if settings.gradient_checkpointing_cpu_offload:
        arguments.append("--gradient_checkpointing_cpu_offload")
    if settings.compile:
        arguments.append("--compile")
    return arguments


def _length_args(segment: SegmentOptions) -> list[str]:
    arguments = (
        ["--max_train_epochs", str(segment.max_train_epochs)]
        if segment.max_train_epochs is not None
        else ["--max_train_steps", str(segment.max_train_steps)]
    )
    if segment.save_every_n_epochs:
        arguments += ["--save_every_n_epochs", str(segment.save_every_n_epochs)]
    if segment.save_every_n_steps:
        arguments += ["--save_every_n_steps", str(segment.save_every_n_steps)]
    return arguments


def _path(value: str | None) -> str:
    return str(Path(value).expanduser().resolve()) if value else ""


def with_environment(command: list[str], environment: dict[str, str]) -> list[str]:
    """`env NAME=value ... command`: what runs is exactly what a dry run prints."""
    if not environment:
        return command
    return ["env", *(f"{name}={value}" for name, value in environment.items()), *command]
