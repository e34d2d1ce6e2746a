"""Data-parallel training (GPU): samples per second on 2 GPUs vs 1, for both engines, measured
in one run on one machine; and the 2-GPU LoRA loaded through diffusers (`lora_state_dict`, the
conversion `load_lora_weights` uses) like the 1-GPU one.

Both engines train the same caches: `--clips` clips of t2v-1.3B latents at 384x208x45 (random
values of the real shapes, written in musubi-tuner's cache format), rank 32, batch 1 per GPU,
gradient checkpointing, AdamW. The diffusers engine loads a random-weight 1.3B transformer built
here from diffusers' own config (the tiny model's other parts, unused by training, beside it);
musubi-tuner (MUSUBI_TUNER_DIR) trains on random weights built with its own classes
(wan_lora_dagster/testing/gpu_fixtures.py). The rate is taken from the times the engine's progress
reports arrive, over the steps after `--warmup`: samples/s = GPUs x batch / (s per step).

    MUSUBI_TUNER_DIR=... python benchmarks/multi_gpu.py [--steps 30] [--warmup 8]
    python benchmarks/multi_gpu.py --small   # a CPU: gloo, the tiny model, no musubi side

Writes $OUT/multi_gpu.json where $OUT is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from wan_lora_dagster.engines.base import Progress, TrainRequest
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.tiny import LATENT_CHANNELS, TEXT_DIM, ensure_tiny_model
from wan_lora_dagster.formats.cache_files import latent_cache_name, text_cache_name
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import save_latent_cache, save_text_cache
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

GOAL = 1.8
HEADER = {"wan_lora.training_set": "benchmark", "wan_lora.train_id": "bench"}
# diffusers' Wan2.1-T2V-1.3B transformer config (Wan-AI/Wan2.1-T2V-1.3B-Diffusers)
WAN_1_3B = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}


@dataclass(frozen=True)
class Size:
    """What one side trains on."""

    width: int
    height: int
    frames: int
    channels: int
    text_dim: int
    rank: int

    def latent_shape(self) -> tuple[int, int, int, int]:
        return (self.channels, (self.frames - 1) // 4 + 1, self.height // 8, self.width // 8)


REAL = Size(384, 208, 45, 16, 4096, 32)
SMALL = Size(32, 32, 9, LATENT_CHANNELS, TEXT_DIM, 4)


@dataclass
class Measured:
    seconds_per_step: float
    samples_per_second: float
    lora: Path | None = None
    extra: dict = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a CPU smoke run (gloo, tiny model)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--engines", default="diffusers,musubi")
    options = parser.parse_args()
    size = SMALL if options.small else REAL
    engines = options.engines.split(",")
    if options.small or not os.environ.get("MUSUBI_TUNER_DIR"):
        engines = [engine for engine in engines if engine != "musubi"]
    results: dict[str, dict[int, Measured]] = {}
    with tempfile.TemporaryDirectory(prefix="wan-lora-bench-gpus-") as scratch:
        root = Path(scratch)
        manifest, section = write_caches(root / "project", size, options.clips)
        for engine in engines:
            results[engine] = {}
            for gpus in (1, 2):
                started = time.monotonic()
                results[engine][gpus] = MEASURE[engine](
                    root, manifest, section, size, gpus, options
                )
                measured = results[engine][gpus]
                print(
                    f"{engine} on {gpus} GPU(s): {measured.seconds_per_step:.3f} s/step, "
                    f"{measured.samples_per_second:.3f} samples/s "
                    f"({time.monotonic() - started:.0f} s with loading)",
                    flush=True,
                )
        if "diffusers" in results:
            results["diffusers"][2].extra = loaded_like(root, manifest, size, results["diffusers"])
    report(results, options)


def write_caches(root: Path, size: Size, clips: int) -> tuple[TrainingSetManifest, DatasetSection]:
    """Random latents and text encodings in musubi-tuner's cache format; the last clip held out."""
    section = DatasetSection(
        name="motion",
        source="clips",
        resolution=(size.width, size.height),
        target_frames=(size.frames,),
    )
    generator = torch.Generator().manual_seed(0)
    entries = []
    for index in range(clips):
        item = f"clip{index:02d}"
        latent = root / "cache" / latent_cache_name(item, size.width, size.height, 0, size.frames)
        save_latent_cache(latent, torch.randn(size.latent_shape(), generator=generator))
        text = root / "cache" / text_cache_name(item)
        save_text_cache(text, torch.randn(24, size.text_dim, generator=generator).bfloat16())
        entries.append(
            ManifestEntry(
                item_id=item,
                kind="clip",
                section=section.name,
                latent_files=(str(latent.relative_to(root)),),
                text_file=str(text.relative_to(root)),
                caption=f"clip {index}",
                caption_origin="auto",
                caption_version="c",
                latent_version="l",
                text_version="t",
                held_out=index == clips - 1,
            )
        )
    return TrainingSetManifest(tuple(entries), root=root), section


def diffusers_model(root: Path, size: Size) -> Path:
    """The tiny model's folder; at the real size its transformer is a random t2v-1.3B."""
    folder = ensure_tiny_model(root / "model")
    if size is REAL and not (folder / "transformer" / "REAL_1_3B").exists():
        from diffusers import WanTransformer3DModel

        with torch.device("cuda"):
            transformer = WanTransformer3DModel(**WAN_1_3B).to(torch.bfloat16)
        transformer.save_pretrained(folder / "transformer")
        (folder / "transformer" / "REAL_1_3B").touch()
        del transformer
        torch.cuda.empty_cache()
    return folder


def settings_for(size: Size, gpus: int, steps: int, **engine) -> TrainingSettings:
    return TrainingSettings(
        network_dim=size.rank,
        network_alpha=size.rank,
        max_train_steps=steps,
        gpus=gpus,
        seed=1,
        **engine,
    )


def measure_diffusers(root, manifest, section, size, gpus, options) -> Measured:
    model = diffusers_model(root, size)
    settings = settings_for(size, gpus, options.steps, model=str(model))
    device = "cpu" if options.small else "cuda"
    engine = DiffusersEngine(settings, models_dir=root / "models", device=device)
    output = root / f"diffusers-{gpus}"
    request = TrainRequest(manifest, settings, (section,), output, "lora-bench", dict(HEADER))
    arrivals = Arrivals()
    checkpoints = engine.train(request, arrivals, lambda checkpoint: None)
    del engine
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return arrivals.measured(gpus, options.warmup, checkpoints[-1].path)


def measure_musubi(root, manifest, section, size, gpus, options) -> Measured:
    from wan_lora_dagster.engines.musubi import MusubiEngine
    from wan_lora_dagster.testing.gpu_fixtures import musubi_checkout, random_weights, weights_dir

    weights = random_weights(weights_dir(), musubi_checkout())
    settings = settings_for(
        size, gpus, options.steps, engine="musubi", musubi_dir=str(musubi_checkout()), **weights
    )
    engine = MusubiEngine(settings, root / f"musubi-work-{gpus}")
    output = root / f"musubi-{gpus}"
    request = TrainRequest(manifest, settings, (section,), output, "lora-bench", dict(HEADER))
    arrivals = Arrivals()
    checkpoints = engine.train(request, arrivals, lambda checkpoint: None)
    return arrivals.measured(gpus, options.warmup, checkpoints[-1].path)


MEASURE = {"diffusers": measure_diffusers, "musubi": measure_musubi}


class Arrivals:
    """A progress callback noting when each step's report arrives."""

    def __init__(self):
        self.times: dict[int, float] = {}

    def __call__(self, report: Progress) -> None:
        if report.stage == "train":
            self.times.setdefault(report.done, time.monotonic())

    def measured(self, gpus: int, warmup: int, lora: Path) -> Measured:
        steps = sorted(self.times)
        first = next(step for step in steps if step >= warmup)
        last = steps[-1]
        per_step = (self.times[last] - self.times[first]) / max(last - first, 1)
        return Measured(per_step, gpus / per_step, lora)


def loaded_like(root: Path, manifest, size: Size, measured: dict[int, Measured]) -> dict:
    """Held-out loss without a LoRA and with each engine's LoRA, loaded through diffusers'
    conversion of musubi keys; and how many LoRA tensors each file converts to."""
    from diffusers import WanPipeline

    settings = settings_for(size, 1, 1, model=str(diffusers_model(root, size)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = DiffusersEngine(settings, models_dir=root / "models", device=device)
    found = {"validation_loss_base": engine.validation_loss(None, manifest, settings)}
    for gpus, result in measured.items():
        converted = WanPipeline.lora_state_dict(str(result.lora))
        found[f"converted_keys_{gpus}gpu"] = len(converted)
        found[f"validation_loss_{gpus}gpu"] = engine.validation_loss(
            result.lora, manifest, settings
        )
    return found


def report(results: dict[str, dict[int, Measured]], options) -> None:
    rows = {}
    print(f"\n{'engine':<10} {'GPUs':>4} {'s/step':>8} {'samples/s':>10}")
    for engine, by_gpus in results.items():
        for gpus, measured in by_gpus.items():
            print(
                f"{engine:<10} {gpus:>4} {measured.seconds_per_step:>8.3f} "
                f"{measured.samples_per_second:>10.3f}"
            )
            rows[f"{engine}_{gpus}"] = {
                "seconds_per_step": measured.seconds_per_step,
                "samples_per_second": measured.samples_per_second,
                **measured.extra,
            }
    for engine, by_gpus in results.items():
        ratio = by_gpus[2].samples_per_second / by_gpus[1].samples_per_second
        rows[f"{engine}_ratio"] = ratio
        print(f"{engine}: 2 GPUs / 1 GPU samples/s = {ratio:.2f}x (goal >= {GOAL}x)")
    for key, value in results.get("diffusers", {}).get(2, Measured(0, 0)).extra.items():
        print(f"{key}: {value}")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "multi_gpu.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
