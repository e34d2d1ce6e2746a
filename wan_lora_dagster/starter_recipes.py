"""The recipes `wan-lora init` writes: the commented template, adapted to a task, or the settings
of one of the two projects this product is modelled on (templates/<name>.toml).

Each is a whole, commented wan_lora.toml that loads as it is (tests load every one).
"""

from __future__ import annotations

from importlib import resources

from wan_lora_dagster.project import CONFIG_NAME
from wan_lora_dagster.tasks import TASK_NAMES, wan_task

SEED_PROJECTS = {
    "ghibli": "a Studio Ghibli style LoRA (t2v-14B, musubi, 24 GB): clips and stills",
    "dragonball": "a Dragon Ball image-to-video LoRA (i2v-14B): animates still images",
}

# The template's [training] lines that name the task and its weights, replaced per task.
_TEMPLATE_MODEL_LINES = (
    'task = "t2v-1.3B"',
    'model = "tiny"',
    "# musubi engine: weights as files, and where musubi-tuner is checked out",
    '# dit = "/models/wan2.1_t2v_1.3B_bf16.safetensors"',
    '# vae = "/models/Wan2.1_VAE.pth"',
    '# t5 = "/models/models_t5_umt5-xxl-enc-bf16.pth"',
    '# musubi_dir = "/opt/musubi-tuner"',
)
_WAN21_VAE = '# vae = "/models/Wan2.1_VAE.pth"'
_MUSUBI_TAIL = (
    '\n# t5 = "/models/models_t5_umt5-xxl-enc-bf16.pth"\n# musubi_dir = "/opt/musubi-tuner"'
)

_MODEL_LINES = {
    "t2v-1.3B": f"""\
task = "t2v-1.3B"              # Wan 2.1 text-to-video, 1.3B: fits 8-12 GB
model = "tiny"                 # "tiny" (offline plumbing model) or Wan-AI/Wan2.1-T2V-1.3B-Diffusers
# musubi engine: weights as files, and where musubi-tuner is checked out
# dit = "/models/wan2.1_t2v_1.3B_bf16.safetensors"
{_WAN21_VAE}{_MUSUBI_TAIL}""",
    "t2v-14B": f"""\
task = "t2v-14B"               # Wan 2.1 text-to-video, 14B: 24 GB with musubi, fp8, block swap
model = "tiny"                 # "tiny" or a folder like Wan-AI/Wan2.1-T2V-14B-Diffusers
# musubi engine: weights as files, and where musubi-tuner is checked out
# dit = "/models/wan2.1_t2v_14B_bf16.safetensors"
{_WAN21_VAE}{_MUSUBI_TAIL}""",
    "i2v-14B": f"""\
task = "i2v-14B"               # Wan 2.1 image-to-video, 14B: conditioned on each clip's first frame
model = "tiny"                 # "tiny" or a folder like Wan-AI/Wan2.1-I2V-14B-480P-Diffusers
# musubi engine: weights as files (I2V also needs the CLIP image encoder)
# dit = "/models/wan2.1_i2v_480p_14B_bf16.safetensors"
# clip = "/models/models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
{_WAN21_VAE}{_MUSUBI_TAIL}""",
    "t2v-A14B": f"""\
task = "t2v-A14B"              # Wan 2.2 text-to-video: two experts, a LoRA for each
model = "tiny"                 # "tiny" or a folder like Wan-AI/Wan2.2-T2V-A14B-Diffusers
experts = ["high", "low"]      # both in this run; or ["high"] now and ["low"] in a later run
# timestep_boundary = 0.875    # t where the experts switch (default: the model's boundary_ratio)
# musubi engine: each expert's DiT (musubi's --dit is the low-noise one), one musubi run each
# dit = "/models/wan2.2_t2v_low_noise_14B_fp16.safetensors"
# dit_high_noise = "/models/wan2.2_t2v_high_noise_14B_fp16.safetensors"
{_WAN21_VAE}  # the A14B experts use the Wan 2.1 VAE{_MUSUBI_TAIL}""",
    "i2v-A14B": f"""\
task = "i2v-A14B"              # Wan 2.2 image-to-video: two experts, a LoRA for each, no CLIP
model = "tiny"                 # "tiny" or a folder like Wan-AI/Wan2.2-I2V-A14B-Diffusers
experts = ["high", "low"]      # both in this run; or ["high"] now and ["low"] in a later run
# timestep_boundary = 0.9      # t where the experts switch (default: the model's boundary_ratio)
# musubi engine: each expert's DiT (musubi's --dit is the low-noise one), one musubi run each
# dit = "/models/wan2.2_i2v_low_noise_14B_fp16.safetensors"
# dit_high_noise = "/models/wan2.2_i2v_high_noise_14B_fp16.safetensors"
{_WAN21_VAE}  # the A14B experts use the Wan 2.1 VAE{_MUSUBI_TAIL}""",
    "ti2v-5B": """\
task = "ti2v-5B"               # Wan 2.2 TI2V-5B: its own VAE (16x smaller sides): sides / 32
model = "tiny"                 # "tiny" or a folder like Wan-AI/Wan2.2-TI2V-5B-Diffusers
# engine = "diffusers" only: musubi-tuner has no TI2V-5B (and no Wan 2.2 VAE)""",
}

# The template's sizes for a task whose sides divide by more than 16 (the template's 208 does
# not divide by 32, which TI2V-5B's VAE needs), by that step.
_SIZES_BY_STEP = {
    32: {
        "resolution = [384, 208]        # bucket [width, height], multiples of 16": (
            "resolution = [640, 352]        # bucket [width, height], multiples of 32 for ti2v-5B"
        ),
        "width = 384\nheight = 208": "width = 640\nheight = 352",
    }
}


def _template(name: str) -> str:
    return (resources.files("wan_lora_dagster") / "templates" / name).read_text(encoding="utf-8")


def task_recipe(task: str) -> str:
    """The commented template with `task`'s model, weights and (for TI2V-5B) sizes."""
    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASK_NAMES)}")
    lines = _template(CONFIG_NAME).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(_TEMPLATE_MODEL_LINES[0]))
    end = next(i for i, line in enumerate(lines) if line.startswith(_TEMPLATE_MODEL_LINES[-1]))
    replaced = [*lines[:start], *_MODEL_LINES[task].splitlines(), *lines[end + 1 :]]
    text = "\n".join(replaced) + "\n"
    for old, new in _SIZES_BY_STEP.get(wan_task(task).resolution_step, {}).items():
        text = text.replace(old, new)
    return text


def seed_recipe(name: str) -> str:
    """The settings of one of SEED_PROJECTS, commented, as an example to start from."""
    if name not in SEED_PROJECTS:
        raise ValueError(f"unknown example {name!r}; one of {', '.join(SEED_PROJECTS)}")
    return _template(f"{name}.toml")
