"""The same math, proven: one training step of our diffusers engine and one of musubi-tuner's, on
the same weights, batch, noise and timesteps, give the same loss and the same LoRA gradients.

A speed ratio of the two engines (benchmarks/engine_gpu.py) means something only if both do the
same work. Here, in one process, for each configuration:
- weights: random, of the real shapes read off musubi's own `WanModel` (the fixtures' rule,
  wan_lora_dagster/testing/gpu_fixtures.py), built once and shared by the configurations whose
  shapes match; musubi's model takes them as they are, ours converted by diffusers' converter
  (benchmarks/_gpu_models.py), both sharing the tensors (fp8 storage makes its own copies);
- the batch: one latent cache and one text cache in musubi's format, read by each side's own
  loader (ours: engines/training_data.py; musubi's: its BucketBatchManager);
- the same noise, the same explicit t per sample, the same initial LoRA weights (a non-zero up/B
  so that down/A gets a gradient), mapped module by module (lora_down/lora_up = lora_A/lora_B);
- ours: the product's LoRA (engines/diffusers/lora_training.py `_training_adapter`) and loss
  (engines/flow_matching.py `flow_matching_loss`), backward; musubi's: its trainer's own code
  (benchmarks/_same_math_musubi.py), backward.

Sampling t is not compared (each side's schemes differ by design, e.g. our `sigma` applies
`discrete_flow_shift`; tests/engines/musubi/test_musubi_timesteps_real_source.py compares them):
both are given the same t. musubi's trainer hands its model t * 1000 + 1 (trainer_base.py
`get_noisy_model_input_and_timesteps`: `timesteps += 1`), ours t * 1000 (as inference does):
the compared step gives musubi's model t * 1000 too; the "as shipped" column is musubi's loss with
its + 1, no gradient.

Rows: t2v-14B with fp8 base (ours `fp8_scaled`: one scale per output row, beside musubi's
`--fp8_scaled`, 64 weights a scale); the same with our unscaled cast (`fp8_scaled = false`, not
the same weights as musubi's: the row shows what the scales are for); the same with our
fp8_compute (on fp8 tensor cores; musubi's step reused); t2v-14B in bf16; t2v-A14B's high-noise
expert; i2v-14B.

Goals: loss relative difference <= 1e-4 in fp32 (the --small CPU run), <= 1 % in bf16 or with
fp8 storage (both scaled, but ours per row and musubi's per 64 weights: close, not equal weights);
LoRA gradient cosine >= 0.99, per module (the minimum) and overall.

    source .gpu/setup.sh && python benchmarks/same_math_gpu.py        # H100/H200, bf16, 40 blocks
    MUSUBI_TUNER_DIR=... python benchmarks/same_math_gpu.py --small   # CPU, fp32, 2 blocks

Writes the table to $OUT/same_math_gpu.md and the rows to $OUT/same_math_gpu.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from _gpu_models import SHAPES, ModelShape, diffusers_transformer, keep_in_fp32
from _same_math_musubi import MusubiStep, MusubiTrainer, import_musubi

from wan_lora_dagster.engines.diffusers.acceleration.fp8_compute import fp8_compute_linears
from wan_lora_dagster.engines.diffusers.lora_network import TRAINING_ADAPTER, training_adapter
from wan_lora_dagster.engines.flow_matching import flow_matching_loss
from wan_lora_dagster.engines.training_data import TrainingSample, load_batches
from wan_lora_dagster.engines.wan_models import store_in_fp8
from wan_lora_dagster.formats.adapter_keys import file_module
from wan_lora_dagster.formats.cache_files import latent_cache_name
from wan_lora_dagster.formats.musubi_cache import save_latent_cache
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.tasks import wan_task
from wan_lora_dagster.testing.gpu_fixtures import ClipSpec, _random_state, musubi_checkout
from wan_lora_dagster.testing.gpu_fixtures import write_text_cache as write_text

SMALL = ModelShape(dim=64, ffn_dim=128, heads=2, layers=2)
FP32_TOLERANCE, BF16_TOLERANCE, COSINE_GOAL = 1e-4, 1e-2, 0.99
CLIP_TOKENS, CLIP_DIM = 257, 1280  # Wan 2.1 I2V's CLIP ViT-H image features


@dataclass(frozen=True)
class Config:
    key: str  # for --only
    label: str
    task: str
    fp8: bool
    t: tuple[float, ...]  # one per sample of the batch
    fp8_compute: bool = False  # ours only (musubi's side is its fp8 row's)
    fp8_scaled: bool = True  # ours: one scale per output row (False: the plain cast)

    @property
    def image_to_video(self) -> bool:
        return self.task.startswith("i2v")


@dataclass(frozen=True)
class Run:
    device: torch.device
    dtype: torch.dtype
    shape: ModelShape
    rank: int
    size: tuple[int, int, int]  # width, height, frames of the clip
    batch: int


def configs(small: bool) -> list[Config]:
    """t of the A14B row above the task's boundary: the high-noise expert's steps. The
    fp8_compute row (engine_gpu.py's speed row against musubi's fp8) needs fp8 tensor cores."""
    low, high = ((0.35, 0.8), (0.9, 0.97)) if small else ((0.35,), (0.93,))
    assert min(high) >= wan_task("t2v-A14B").boundary
    fp8_cores = (
        not small and torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
    )
    compute = "t2v-14B, fp8 base + fp8_compute (ours)"
    unscaled = "t2v-14B, fp8 base, ours unscaled"
    return [
        Config("t2v-fp8", "t2v-14B, fp8 base", "t2v-14B", True, low),
        Config("t2v-fp8-unscaled", unscaled, "t2v-14B", True, low, fp8_scaled=False),
        *([Config("t2v-fp8-compute", compute, "t2v-14B", True, low, True)] if fp8_cores else []),
        Config("t2v", "t2v-14B", "t2v-14B", False, low),
        Config("a14b-high", "t2v-A14B high-noise expert", "t2v-A14B", False, high),
        Config("i2v", "i2v-14B (CLIP + image latent)", "i2v-14B", False, low),
    ]


# ---------------------------------------------------------------- the shared inputs


class Weights:
    """One random state dict per set of shapes, a later one reusing every tensor of an earlier
    one's key and shape (i2v-14B adds its image layers to t2v-14B's)."""

    def __init__(self, run: Run):
        self.run = run
        self.state: dict[str, torch.Tensor] = {}

    def of(self, shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
        missing = {
            key: shape
            for key, shape in shapes.items()
            if key not in self.state or list(self.state[key].shape) != shape
        }
        if missing:
            started = time.perf_counter()
            fresh = _random_state(missing, seed=len(self.state), dtype=self.run.dtype)
            self.state.update({key: t.to(self.run.device) for key, t in fresh.items()})
            count = sum(self.state[key].numel() for key in missing)
            print(f"  built {count:,} random weights in {time.perf_counter() - started:.0f} s")
        return {key: self.state[key] for key in shapes}


@dataclass(frozen=True)
class Inputs:
    latent_file: Path
    text_file: Path
    noise: torch.Tensor  # float32, of values the cache dtype holds exactly


def write_inputs(folder: Path, run: Run, image_to_video: bool) -> Inputs:
    """One clip's latent cache (with the I2V conditioning when asked) and text cache, and noise."""
    width, height, frames = run.size
    generator = torch.Generator().manual_seed(0)
    cache_dtype = run.dtype  # bf16 as musubi's caches; fp32 in the fp32 run
    latent = torch.randn(16, (frames - 1) // 4 + 1, height // 8, width // 8, generator=generator)
    extra = {}
    if image_to_video:
        mask = torch.zeros(4, *latent.shape[1:])
        mask[:, 0] = 1  # the first frame is given
        first = torch.zeros_like(latent)
        first[:, 0] = latent[:, 0]
        clip = torch.randn(CLIP_TOKENS, CLIP_DIM, generator=generator)
        extra = {"image_latent": torch.cat([mask, first]).to(cache_dtype)}
        extra["clip_embedding"] = clip.to(cache_dtype)
    name = latent_cache_name("same", width, height, 0, frames)
    latent_file = folder / ("i2v" if image_to_video else "t2v") / name
    save_latent_cache(latent_file, latent.to(cache_dtype), **extra)
    text_file = write_text(folder / "text", "same", ClipSpec(text_tokens=24), seed=0)
    noise = torch.randn(run.batch, *latent.shape, generator=generator)
    return Inputs(latent_file, text_file, noise.to(cache_dtype).float())


def initial_lora(shapes: dict[str, tuple[int, int, int]], seed: int = 0) -> dict:
    """musubi LoRA name -> (down, up): down ~ N(0, 1/in), up ~ N(0, 0.05^2 / rank), non-zero."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name in sorted(shapes):
        rank, fan_in, fan_out = shapes[name]
        down = torch.randn(rank, fan_in, generator=generator) * fan_in**-0.5
        up = torch.randn(fan_out, rank, generator=generator) * 0.05 * rank**-0.5
        weights[name] = (down, up)
    return weights


# ---------------------------------------------------------------- our step


def our_step(config: Config, run: Run, state: dict, inputs: Inputs, lora: dict):
    """The product's LoRA and loss over our transformer; (loss, {musubi name: grads})."""
    transformer = diffusers_transformer(run.shape, state, config.image_to_video)
    transformer = transformer.to(device=run.device, dtype=run.dtype)
    keep_in_fp32(transformer)
    scaled = config.fp8 and config.fp8_scaled
    if config.fp8:
        store_in_fp8(transformer, run.dtype, scaled=scaled)
    settings = TrainingSettings(
        engine="diffusers", task=config.task, network_dim=run.rank, network_alpha=run.rank,
        gradient_checkpointing=True, fp8_base=config.fp8, fp8_scaled=scaled, seed=1,
    )  # fmt: skip
    fp8_compute = (
        fp8_compute_linears if config.fp8_compute else lambda blocks, device: nullcontext()
    )
    with (
        training_adapter(transformer, settings, config.image_to_video),
        fp8_compute(transformer.blocks, run.device),  # after the adapter, as the product does
    ):
        modules = _our_lora_modules(transformer)
        if not lora:
            lora.update(initial_lora({name: _lora_shape(m) for name, m in modules.items()}))
        with torch.no_grad():
            for name, module in modules.items():
                module.lora_A[TRAINING_ADAPTER].weight.copy_(lora[name][0])
                module.lora_B[TRAINING_ADAPTER].weight.copy_(lora[name][1])
        sample = TrainingSample(inputs.latent_file, inputs.text_file, "same")
        [(batch, _)] = load_batches([sample] * run.batch, run.device)
        t = torch.tensor(config.t)
        noise = inputs.noise.to(run.device)
        loss = flow_matching_loss(transformer, batch, noise, t, run.dtype, settings.i2v)
        loss.backward()
        grads = {
            name: tuple(
                layer[TRAINING_ADAPTER].weight.grad.float().cpu()
                for layer in (module.lora_A, module.lora_B)
            )
            for name, module in modules.items()
        }
    return loss.item(), grads


def _our_lora_modules(transformer) -> dict:
    """musubi's LoRA name (formats.adapter_keys) -> our peft layer, for every LoRA'd linear."""
    found = {}
    for name, module in transformer.named_modules():
        if hasattr(module, "lora_A") and TRAINING_ADAPTER in module.lora_A:
            _, block, inner = name.split(".", 2)  # blocks.<n>.<module>
            found[file_module(inner, block)] = module
    return found


def _lora_shape(module) -> tuple[int, int, int]:
    rank, fan_in = module.lora_A[TRAINING_ADAPTER].weight.shape
    return rank, fan_in, module.lora_B[TRAINING_ADAPTER].weight.shape[0]


# ---------------------------------------------------------------- the comparison


@dataclass
class Row:
    label: str
    dtype: str
    depth: int
    loss_ours: float
    loss_musubi: float
    loss_as_shipped: float
    tolerance: float
    cosine_min: float
    cosine_min_module: str
    cosine_overall: float
    modules: int
    seconds: dict

    @property
    def relative(self) -> float:
        return abs(self.loss_ours - self.loss_musubi) / abs(self.loss_musubi)

    @property
    def passed(self) -> bool:
        cosines = (self.cosine_min, self.cosine_overall)
        return self.relative <= self.tolerance and min(cosines) >= COSINE_GOAL


def cosines(ours: dict, musubi: dict) -> tuple[float, str, float]:
    """(the lowest module cosine, its module, the cosine of all gradients together)."""
    if set(ours) != set(musubi):
        raise SystemExit(
            f"the LoRA modules differ: ours only {sorted(set(ours) - set(musubi))[:5]}, "
            f"musubi's only {sorted(set(musubi) - set(ours))[:5]}"
        )
    each, dot, ours_norm, musubi_norm = {}, 0.0, 0.0, 0.0
    for name in ours:
        a = torch.cat([g.flatten().double() for g in ours[name]])
        b = torch.cat([g.flatten().double() for g in musubi[name]])
        each[name] = (a @ b / (a.norm() * b.norm())).item()
        dot, ours_norm, musubi_norm = dot + a @ b, ours_norm + a @ a, musubi_norm + b @ b
    worst = min(each, key=each.get)
    return each[worst], worst, (dot / (ours_norm.sqrt() * musubi_norm.sqrt())).item()


def compare(
    config: Config, run: Run, musubi, weights: Weights, folder: Path, musubi_steps: dict
) -> Row:
    """musubi_steps: its step of each (task, fp8), reused by a row of ours that differs only in
    our own options."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    side = MusubiTrainer(musubi, config.task, run.dtype, run.rank, config.fp8, run.shape)
    state = weights.of(side.shapes())
    inputs = write_inputs(folder, run, config.image_to_video)
    seconds["weights"] = time.perf_counter() - started
    lora: dict = {}
    started = time.perf_counter()
    loss_ours, grads_ours = our_step(config, run, state, inputs, lora)
    _free(run.device)
    seconds["ours"] = time.perf_counter() - started
    started = time.perf_counter()
    key = (config.task, config.fp8)
    if key not in musubi_steps:
        musubi_steps[key] = musubi_step(side, state, lora, inputs, run, config.t)
    step = musubi_steps[key]
    seconds["musubi"] = time.perf_counter() - started
    cosine_min, worst, overall = cosines(grads_ours, step.grads)
    fp32 = run.dtype == torch.float32 and not config.fp8
    return Row(
        config.label, "fp32" if run.dtype == torch.float32 else "bf16",
        run.shape.layers, loss_ours, step.loss, step.loss_as_shipped,
        FP32_TOLERANCE if fp32 else BF16_TOLERANCE, cosine_min, worst, overall,
        len(grads_ours), {k: round(v, 1) for k, v in seconds.items()},
    )  # fmt: skip


def musubi_step(side: MusubiTrainer, state, lora, inputs: Inputs, run: Run, t) -> MusubiStep:
    model = side.model(state)
    network = side.network(model, lora)
    batch = side.batch(inputs.latent_file, inputs.text_file, run.size, run.batch)
    step = side.step(model, network, batch, inputs.noise, list(t))
    del model, network, batch
    _free(run.device)
    return step


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def table(rows: list[Row], run: Run) -> str:
    columns = (
        "config", "dtype", "depth", "loss ours", "loss musubi", "relative difference",
        "goal", "LoRA modules", "grad cosine min (module)", "grad cosine overall", "result",
        "musubi as shipped (t*1000+1)", "its relative difference",
    )  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        as_shipped = abs(row.loss_as_shipped - row.loss_ours) / abs(row.loss_as_shipped)
        cells = [
            row.label, row.dtype, str(row.depth), f"{row.loss_ours:.6f}",
            f"{row.loss_musubi:.6f}", f"{row.relative:.2e}", f"<= {row.tolerance:g}",
            str(row.modules),
            f"{row.cosine_min:.5f} ({row.cosine_min_module})", f"{row.cosine_overall:.5f}",
            "PASS" if row.passed else "FAIL", f"{row.loss_as_shipped:.6f}", f"{as_shipped:.2e}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    width, height, frames = run.size
    device = torch.cuda.get_device_name() if run.device.type == "cuda" else "CPU"
    lines.append(
        f"\n{device}, torch {torch.__version__}; dim {run.shape.dim}, ffn {run.shape.ffn_dim}, "
        f"{run.shape.heads} heads; a batch of {run.batch} {width}x{height}x{frames} clip(s); "
        f"LoRA rank {run.rank}; "
        "gradient checkpointing on both sides. Both sides get the same explicit t "
        "(sampling is not compared) and musubi's model t*1000 as ours (its trainer adds 1: "
        "the as-shipped column); fp8 rows: ours fp8_scaled per output row unless 'unscaled', "
        "musubi --fp8_scaled per 64 weights."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CPU, fp32, 2 blocks, small dim")
    parser.add_argument("--only", default="", help="config keys, comma-separated: " + ", ".join(
        config.key for config in configs(False)))  # fmt: skip
    parser.add_argument(
        "--musubi", default=None, help="musubi-tuner checkout (or $MUSUBI_TUNER_DIR)"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if options.musubi:
        os.environ["MUSUBI_TUNER_DIR"] = options.musubi
    checkout = musubi_checkout()
    if checkout is None:
        sys.exit("same_math_gpu: set MUSUBI_TUNER_DIR (or --musubi) to a musubi-tuner checkout")
    cuda = torch.cuda.is_available() and not options.small
    if not cuda and not options.small:
        sys.exit("same_math_gpu: needs CUDA (or --small for the CPU run)")
    run = Run(
        device=torch.device("cuda" if cuda else "cpu"),
        dtype=torch.bfloat16 if cuda else torch.float32,
        shape=SMALL if options.small else SHAPES["t2v-14B"],
        rank=8 if options.small else 32,
        size=(64, 64, 9) if options.small else (384, 208, 45),
        batch=len(configs(options.small)[0].t),
    )
    wanted = set(filter(None, options.only.split(",")))
    chosen = [c for c in configs(options.small) if not wanted or c.key in wanted]
    started = time.perf_counter()
    musubi = import_musubi(checkout)
    weights, rows, musubi_steps = Weights(run), [], {}
    with tempfile.TemporaryDirectory(prefix="same-math-") as folder:
        for config in chosen:
            rows.append(compare(config, run, musubi, weights, Path(folder), musubi_steps))
            print(f"  {config.label}: {rows[-1].seconds} s, {time.perf_counter() - started:.0f} "
                  "s so far", flush=True)  # fmt: skip
    report = table(rows, run) + f"\n\nwall {time.perf_counter() - started:.0f} s"
    print("\n" + report)
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="same-math-"))
    (out / "same_math_gpu.md").write_text(report + "\n")
    found = [{**asdict(row), "relative": row.relative, "passed": row.passed} for row in rows]
    (out / "same_math_gpu.json").write_text(json.dumps(found, indent=1))
    print(f"  written to {out}/same_math_gpu.md")
    failed = [row.label for row in rows if not row.passed]
    if failed:
        sys.exit(f"same_math_gpu: {len(failed)} of {len(rows)} FAIL: {', '.join(failed)}")


if __name__ == "__main__":
    main()
