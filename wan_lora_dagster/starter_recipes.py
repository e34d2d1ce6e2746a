"""The recipes `wan-lora init` writes: the commented template, adapted to a task, or the settings
of one of the two projects this product is modelled on (templates/<name>.toml).

Each is a whole, commented wan_lora.toml that loads as it is (tests load every one).
"""

from __future__ import annotations

from importlib import resources

from wan_lora_dagster.project import CONFIG_NAME
from wan_lora_dagster.tasks import HIGH_NOISE, LOW_NOISE, TASK_NAMES, WanTask, wan_task

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
_VALUE_WIDTH = 30  # the template's values are padded to this, then a space and their comment
_CLIP = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"


def _model_lines(task: WanTask) -> list[str]:
    """The [training] lines of `task`: its model, experts and (musubi engine) weight files."""
    lines = [
        _commented(f'task = "{task.name}"', task.summary),
        _commented('model = "tiny"', f'"tiny" or a folder like {task.diffusers_repo}'),
    ]
    if task.experts:
        lines += [
            _commented(
                'experts = ["high", "low"]',
                'both in this run; or ["high"] now and ["low"] in a later run',
            ),
            _commented(
                f"# timestep_boundary = {task.boundary}",
                "t where the experts switch (default: the model's boundary_ratio)",
            ),
        ]
    if task.musubi_task is None:
        return [*lines, f'# engine = "diffusers" only: musubi-tuner has no {task.name.upper()}']
    return [*lines, *_musubi_lines(task)]


def _musubi_lines(task: WanTask) -> list[str]:
    if task.experts:
        return [
            "# musubi engine: each expert's DiT (musubi's --dit is the low-noise one), one musubi "
            "run each",
            f'# dit = "/models/{task.musubi_dit.format(expert=LOW_NOISE)}"',
            f'# dit_high_noise = "/models/{task.musubi_dit.format(expert=HIGH_NOISE)}"',
            f"{_TEMPLATE_MODEL_LINES[4]}  # the A14B experts use the Wan 2.1 VAE",
            *_TEMPLATE_MODEL_LINES[5:],
        ]
    weights = (
        "# musubi engine: weights as files (I2V also needs the CLIP image encoder)"
        if task.clip
        else _TEMPLATE_MODEL_LINES[2]
    )
    return [
        weights,
        f'# dit = "/models/{task.musubi_dit}"',
        *([f'# clip = "/models/{_CLIP}"'] if task.clip else []),
        *_TEMPLATE_MODEL_LINES[4:],
    ]


def _commented(line: str, comment: str) -> str:
    return f"{line.ljust(_VALUE_WIDTH)} # {comment}"


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
    replaced = [*lines[:start], *_model_lines(wan_task(task)), *lines[end + 1 :]]
    text = "\n".join(replaced) + "\n"
    for old, new in _SIZES_BY_STEP.get(wan_task(task).resolution_step, {}).items():
        text = text.replace(old, new)
    return text


def seed_recipe(name: str) -> str:
    """The settings of one of SEED_PROJECTS, commented, as an example to start from."""
    if name not in SEED_PROJECTS:
        raise ValueError(f"unknown example {name!r}; one of {', '.join(SEED_PROJECTS)}")
    return _template(f"{name}.toml")
