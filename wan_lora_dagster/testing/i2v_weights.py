"""What musubi-tuner's i2v-14B generation loads beside the DiT, T5 and tokenizer (gpu_fixtures.py):
its CLIP image encoder and its VAE, as random-value files of the real shapes, and a tokenizer
folder laid out like the Wan repository (both tokenizers offline).

The CLIP is musubi's OWN XLMRobertaCLIP as `clip_xlm_roberta_vit_h_14()` configures it (the
open-clip xlm-roberta-large-vit-huge-14 of Wan's `models_clip_open-clip-xlm-roberta-large-vit-
huge-14.pth`; musubi vendors it, open_clip is not needed), built on the meta device, then one
random fp16 tensor per key; musubi's CLIPModel loads it strictly. Built in a subprocess (musubi
configures logging when imported), on the GPU when there is one. Plain functions: no pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wan_lora_dagster.testing.gpu_fixtures import (
    VAE_NAME,
    _python_path,
    _random_state,
    _save_atomically,
    offline_tokenizer,
)

CLIP_NAME = "clip_xlm_roberta_vit_h_14_random_fp16.safetensors"  # 1.2B parameters: 2.4 GB
# The subfolders musubi asks the hub for (engines/musubi/hub.py), inside `[training] tokenizer`.
TOKENIZER_SUBFOLDERS = ("google/umt5-xxl", "xlm-roberta-large")


def random_clip(folder: Path, musubi_dir: Path) -> str:
    return _build_once(folder / CLIP_NAME, "--clip", musubi_dir)


def random_vae(folder: Path, musubi_dir: Path) -> str:
    """The Wan 2.1 VAE alone (gpu_fixtures.random_weights builds it with a t2v DiT)."""
    return _build_once(folder / VAE_NAME, "--vae", musubi_dir)


def wan_tokenizer_folder(folder: Path) -> str:
    """`[training] tokenizer` for I2V: an offline tokenizer in each subfolder musubi asks for."""
    for subfolder in TOKENIZER_SUBFOLDERS:
        offline_tokenizer(folder / subfolder)
    return str(folder)


def _build_once(path: Path, kind: str, musubi_dir: Path) -> str:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "PYTHONPATH": _python_path(musubi_dir)}
        subprocess.run([sys.executable, __file__, kind, str(path)], check=True, env=environment)
    return str(path)


def _build_clip(path: Path) -> None:
    import torch
    from musubi_tuner.wan.modules.clip import clip_xlm_roberta_vit_h_14

    with torch.device("meta"):
        model = clip_xlm_roberta_vit_h_14(pretrained=False)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    _save_atomically(_random_state(shapes, seed=3, dtype=torch.float16), path)


if __name__ == "__main__":
    import torch

    if not torch.cuda.is_available():  # wan/modules/__init__ imports t5.py, which asks at import
        torch.cuda.current_device = lambda: 0
    kind, target = sys.argv[1], Path(sys.argv[2])
    if kind == "--clip":
        _build_clip(target)
    else:
        from wan_lora_dagster.testing.gpu_fixtures import _build_vae

        _build_vae(target)
