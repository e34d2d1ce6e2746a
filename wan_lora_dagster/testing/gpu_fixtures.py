"""Real-shape Wan 2.1 t2v-1.3B inputs for the musubi GPU test and benchmark (no download).

Random-value weights of the real shapes, built from musubi-tuner's OWN model classes (its WanModel
under accelerate's init_empty_weights, its WanVAE_ on the meta device; then one random tensor per
state-dict key), so that its strict loaders take them; synthetic clips; text-encoder caches
written directly (random [tokens, 4096] embeddings: training needs no T5); the manifest and
requests the graph would build (testing/gpu_watch.py watches the GPU and the training's
processes).

Plain functions, importable by benchmarks/musubi_overhead.py. The weights are built in a
subprocess (musubi configures logging when imported) and kept under $WAN_LORA_TEST_WEIGHTS
(default: <tmp>/wan-lora-test-weights) for the next run: about 3 GB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wan_lora_dagster.engines.base import LatentJob, TrainRequest
from wan_lora_dagster.formats.cache_files import text_cache_name
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import save_text_cache
from wan_lora_dagster.media.video_writer import write_video
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

DIT_NAME = "wan2.1_t2v_1.3B_random_bf16.safetensors"
VAE_NAME = "wan2.1_vae_random_bf16.safetensors"
T5_NAME = "t5-unused.pth"  # check() wants a T5 file; training from caches never opens it
REAL_T5_NAME = "umt5-xxl-enc_random_bf16.safetensors"  # 5.7B parameters: 11.4 GB
# The 1.3B release prefixes its keys; musubi's loader strips the prefix (wan/modules/model.py).
DIT_KEY_PREFIX = "model.diffusion_model."
TEXT_DIM = 4096
HEADER = {"wan_lora.training_set": "gpu-test-set", "wan_lora.train_id": "gpu0001"}


@dataclass(frozen=True)
class ClipSpec:
    """Synthetic clips: `num_frames` frames of width x height; trained on `target_frames`."""

    width: int = 384
    height: int = 208
    num_frames: int = 49
    target_frames: int = 45
    count: int = 4
    text_tokens: int = 24

    @property
    def section(self) -> DatasetSection:
        return DatasetSection(
            name="motion",
            source="clips",
            resolution=(self.width, self.height),
            target_frames=(self.target_frames,),
        )


def musubi_checkout() -> Path | None:
    """$MUSUBI_TUNER_DIR when it is a musubi-tuner checkout (scripts in src/musubi_tuner)."""
    value = os.environ.get("MUSUBI_TUNER_DIR")
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    return root if (root / "src" / "musubi_tuner" / "wan_train_network.py").is_file() else None


def skip_reason() -> str | None:
    """Why the GPU test cannot run here, or None."""
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    if musubi_checkout() is None:
        return (
            "set MUSUBI_TUNER_DIR to a kohya-ss/musubi-tuner checkout "
            "(its repo root, scripts under src/musubi_tuner)"
        )
    return None


def weights_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "wan-lora-test-weights"
    return Path(os.environ.get("WAN_LORA_TEST_WEIGHTS", default)).expanduser()


def random_weights(folder: Path, musubi_dir: Path) -> dict[str, str]:
    """dit, vae and t5 paths under folder; builds (once) what is missing, in a subprocess."""
    folder.mkdir(parents=True, exist_ok=True)
    dit, vae, t5 = folder / DIT_NAME, folder / VAE_NAME, folder / T5_NAME
    if not (dit.is_file() and vae.is_file()):
        environment = {**os.environ, "PYTHONPATH": _python_path(musubi_dir)}
        subprocess.run([sys.executable, __file__, str(dit), str(vae)], check=True, env=environment)
    t5.write_bytes(b"unused: training reads text caches")
    return {"dit": str(dit), "vae": str(vae), "t5": str(t5)}


def random_text_encoder(folder: Path, musubi_dir: Path) -> str:
    """The UMT5-XXL encoder of the real shapes (text caching and generation load it): built
    once, in a subprocess, on the GPU when there is one."""
    path = folder / REAL_T5_NAME
    if not path.is_file():
        environment = {**os.environ, "PYTHONPATH": _python_path(musubi_dir)}
        command = [sys.executable, __file__, "--t5", str(path)]
        subprocess.run(command, check=True, env=environment)
    return str(path)


def offline_tokenizer(folder: Path) -> str:
    """A byte-level BPE tokenizer trained here, saved as a tokenizer folder: what `[training]
    tokenizer` points at where the hub's UMT5 tokenizer cannot be downloaded. Any text encodes
    (ids < 512, inside UMT5's vocabulary); pad 0 and end-of-text 1, as UMT5's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if (folder / "tokenizer.json").is_file():
        return str(folder)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(["shapes moving on a coloured background"], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    wrapped.save_pretrained(str(folder))
    return str(folder)


def real_shape_training(**overrides) -> dict:
    """A `[training]` table for the real musubi-tuner: t2v-1.3B, every weight of the real shapes
    (built once), the offline tokenizer."""
    musubi, folder = musubi_checkout(), weights_dir()
    weights = random_weights(folder, musubi)
    return {
        "engine": "musubi",
        "task": "t2v-1.3B",
        "musubi_dir": str(musubi),
        "dit": weights["dit"],
        "vae": weights["vae"],
        "t5": random_text_encoder(folder, musubi),
        "tokenizer": offline_tokenizer(folder / "umt5-tokenizer"),
        "network_dim": 32,
        "network_alpha": 32,
        **overrides,
    }


def musubi_settings(musubi_dir: Path, weights: dict[str, str], **overrides) -> TrainingSettings:
    base = {
        "engine": "musubi",
        "task": "t2v-1.3B",
        "musubi_dir": str(musubi_dir),
        **weights,
        "network_dim": 32,
        "network_alpha": 32.0,
        "max_train_epochs": 2,
        "save_every_n_epochs": 1,
    }
    return TrainingSettings(**{**base, **overrides})


@dataclass(frozen=True)
class GpuProject:
    """Clips, their latent jobs and their text caches, laid out as the graph lays them out."""

    root: Path
    spec: ClipSpec
    latent_jobs: tuple[LatentJob, ...]
    text_files: dict[str, Path]


def make_project(root: Path, spec: ClipSpec = ClipSpec()) -> GpuProject:
    """`spec.count` synthetic clips and their text caches (no latents yet)."""
    jobs, texts = [], {}
    cache_dir = root / "out" / "cache" / spec.section.name
    for index in range(spec.count):
        item_id = f"clip{index:02d}"
        media = write_video(synthetic_frames(spec, seed=index), root / "media" / f"{item_id}.mp4")
        jobs.append(LatentJob(item_id, media, spec.section, cache_dir))
        texts[item_id] = write_text_cache(root / "out" / "cache" / "text", item_id, spec, index)
    return GpuProject(root, spec, tuple(jobs), texts)


def synthetic_frames(spec: ClipSpec, seed: int) -> np.ndarray:
    """(num_frames, height, width, 3) uint8: a bright square crossing a tinted gradient."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, spec.width)[None, :, None] * rng.uniform(0, 255, 3)
    frames = np.repeat(ramp[None].astype(np.uint8), spec.num_frames, axis=0)
    frames = np.repeat(frames, spec.height, axis=1)
    side = spec.height // 4
    for index, frame in enumerate(frames):
        left = index * (spec.width - side) // max(spec.num_frames - 1, 1)
        top = int(rng.integers(0, spec.height - side))
        frame[top : top + side, left : left + side] = rng.integers(128, 256, 3, dtype=np.uint8)
    return frames


def write_text_cache(folder: Path, item_id: str, spec: ClipSpec, seed: int) -> Path:
    import torch

    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(spec.text_tokens, TEXT_DIM, generator=generator).to(torch.bfloat16)
    path = folder / text_cache_name(item_id)
    save_text_cache(path, embedding, caption=f"synthetic clip {item_id}")
    return path


def manifest_of(project: GpuProject, latents: dict[str, list[Path]]) -> TrainingSetManifest:
    """The training set over the encoded latents (item id -> files) and the text caches."""
    entries = tuple(
        ManifestEntry(
            item_id=job.item_id,
            kind="clip",
            section=job.section.name,
            latent_files=tuple(
                str(path.relative_to(project.root)) for path in latents[job.item_id]
            ),
            text_file=str(project.text_files[job.item_id].relative_to(project.root)),
            caption=f"synthetic clip {job.item_id}",
            caption_origin="auto",
            caption_version="c",
            latent_version="l",
            text_version="t",
        )
        for job in project.latent_jobs
    )
    return TrainingSetManifest(entries, root=project.root)


def train_request(
    project: GpuProject,
    manifest: TrainingSetManifest,
    settings: TrainingSettings,
    output_dir: Path,
    output_name: str = "lora-gpu",
) -> TrainRequest:
    return TrainRequest(
        manifest, settings, (project.spec.section,), output_dir, output_name, dict(HEADER)
    )


def _python_path(musubi_dir: Path) -> str:
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(musubi_dir / "src"), *([existing] if existing else [])])


# Building the weights: run as a script, with musubi-tuner's src/ on PYTHONPATH.


def _random_state(shapes: dict, seed: int, prefix: str = "", dtype=None) -> dict:
    """A bf16 (or `dtype`) tensor per key: norm scales 1, other vectors 0, matrices
    N(0, 1/fan_in) (so activations stay O(1) through the layers and the loss stays finite)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device).manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if len(shape) < 2:
            is_scale = key.endswith("gamma") or ("norm" in key and key.endswith("weight"))
            tensor = (torch.ones if is_scale else torch.zeros)(shape, device=device)
        else:
            # WanModel draws its modulation as randn / sqrt(dim): its fan is the last side
            fan_in = shape[-1] if key.endswith("modulation") else int(np.prod(shape[1:]))
            tensor = torch.randn(shape, generator=generator, device=device) * fan_in**-0.5
        state[prefix + key] = tensor.to(dtype or torch.bfloat16).cpu()
    return state


def _save_atomically(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    partial = path.with_name(f".{path.name}.partial")
    save_file(state, str(partial))
    partial.replace(path)


def _build_dit(path: Path) -> None:
    from accelerate import init_empty_weights
    from musubi_tuner.wan.configs import WAN_CONFIGS
    from musubi_tuner.wan.modules.model import WanModel

    config = WAN_CONFIGS["t2v-1.3B"]
    with init_empty_weights():
        model = WanModel(
            model_type="t2v",
            dim=config.dim,
            eps=config.eps,
            ffn_dim=config.ffn_dim,
            freq_dim=config.freq_dim,
            in_dim=config.in_dim,
            num_heads=config.num_heads,
            num_layers=config.num_layers,
            out_dim=config.out_dim,
            text_len=config.text_len,
            attn_mode="torch",
        )
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    _save_atomically(_random_state(shapes, seed=0, prefix=DIT_KEY_PREFIX), path)


def _build_vae(path: Path) -> None:
    """WanVAE_ as musubi's _video_vae configures it (wan/modules/vae.py)."""
    import torch
    from musubi_tuner.wan.modules.vae import WanVAE_

    with torch.device("meta"):
        model = WanVAE_(
            dim=96,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
            dropout=0.0,
        )
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    _save_atomically(_random_state(shapes, seed=1), path)


def _build_text_encoder(path: Path) -> None:
    """musubi's T5Encoder (umt5_xxl, encoder only), whose loader strips "encoder." from keys."""
    from accelerate import init_empty_weights
    from musubi_tuner.wan.modules.t5 import umt5_xxl

    with init_empty_weights():
        model = umt5_xxl(encoder_only=True, return_tokenizer=False)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    _save_atomically(_random_state(shapes, seed=2), path)


if __name__ == "__main__":
    if sys.argv[1] == "--t5":
        _build_text_encoder(Path(sys.argv[2]))
        sys.exit()
    dit_path, vae_path = map(Path, sys.argv[1:3])
    if not dit_path.is_file():
        _build_dit(dit_path)
    if not vae_path.is_file():
        _build_vae(vae_path)
