"""`fp8_compute` on one GPU: speed at the 14B's real shapes, numerics at the 1.3B's.

(a) speed: t2v-14B, random weights of the real shapes, 384x208x45, LoRA rank 32, batch 1,
    compile + fp8_base + gradient checkpointing: our engine computing in bf16 vs with
    `fp8_compute`, each without and with `blocks_to_swap 10`; s/it (median after engine_gpu's
    warm-up), nvidia-smi peak above idle, torch's peak allocated. `--with-musubi` adds
    musubi-tuner `--fp8_base --fp8_scaled` on the same weights (engine_gpu.py's row; needs
    MUSUBI_TUNER_DIR; about two minutes more) and the ratio to it.
(b) numerics: t2v-1.3B, random weights of the real shapes, 384x208x45, rank 32, compile, N steps
    (`--numerics-steps`, default 300) of bf16 and of `fp8_compute` from the same seed and data
    (latents sharing a pattern, so the LoRA has something to learn and the held-out clips gain
    from it): the per-step losses' relative difference (same timesteps and noise at each step),
    the epoch-smoothed curves' largest relative difference after the first epoch, the held-out
    validation loss of each final LoRA (loaded through diffusers, computed in bf16), and the
    correlation of the final LoRA weights. Goal: within 2 %, correlation above 0.99.

Prints each phase's seconds; writes the report to $OUT/fp8_gpu.md. `--small` runs both parts at
tiny shapes on a CPU in a few minutes (fp8 matmuls on the CPU's torch._scaled_mm, the card
played by FakeCudaCapability of wan_lora_dagster/testing/fake_cuda.py): the code paths, not
the numbers.

    python benchmarks/fp8_gpu.py [--steps 8] [--numerics-steps 300] [--only speed,numerics]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _gpu_models import SHAPES, build_weights, ours_models, write_caches
from engine_gpu import (
    DATASHEET_TFLOPS,
    MOTION,
    SMALL_MOTION,
    Config,
    musubi_helpers,
    run_musubi,
    run_ours,
    step_flops,
)

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.formats.cache_files import latent_cache_name
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import save_latent_cache
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.gpu_fixtures import ClipSpec, musubi_checkout, write_text_cache
from wan_lora_dagster.testing.gpu_watch import gpu_memory_used

GOAL_RELATIVE = 0.02
GOAL_CORRELATION = 0.99


BF16 = "14B ours compile+fp8_base scaled, bf16 compute"
FP8 = "14B ours compile+fp8_base scaled, fp8_compute"
BF16_SWAP, FP8_SWAP = "14B ours bf16 compute, swap 10", "14B ours fp8_compute, swap 10"
MUSUBI = "14B musubi --fp8_base --fp8_scaled"
RATIOS = (
    ("fp8_compute / bf16 compute", FP8, BF16),
    ("fp8_compute swap 10 / fp8_compute no swap (goal <= 1.05)", FP8_SWAP, FP8),
    ("bf16 compute swap 10 / no swap", BF16_SWAP, BF16),
    ("ours fp8_compute / musubi (goal <= 0.35)", FP8, MUSUBI),
    ("ours bf16 compute / musubi", BF16, MUSUBI),
)


def speed_configs(small: bool, musubi: bool) -> list[Config]:
    task, motion, swap = ("t2v-14B", (SMALL_MOTION if small else MOTION,), 2 if small else 10)
    base = {"compile": True, "fp8_base": True, "fp8_scaled": True}  # musubi's row is scaled too
    fp8 = {**base, "fp8_compute": True}
    rows = [
        Config(BF16, task, "ours", motion, base),
        Config(FP8, task, "ours", motion, fp8),
        Config(BF16_SWAP, task, "ours", motion, {**base, "blocks_to_swap": swap}),
        Config(FP8_SWAP, task, "ours", motion, {**fp8, "blocks_to_swap": swap}),
    ]
    if musubi:
        rows.insert(
            0, Config(MUSUBI, task, "musubi", motion, {"fp8_base": True, "fp8_scaled": True})
        )
    return rows


def run_speed(options, device: torch.device, scratch: Path, report: list[str]) -> None:
    started = time.perf_counter()
    shape = SHAPES["small" if options.small else "t2v-14B"]
    musubi = musubi_checkout() if options.with_musubi and device.type == "cuda" else None
    if options.with_musubi and not musubi:
        print("  musubi row skipped: needs CUDA and MUSUBI_TUNER_DIR")
    rows = speed_configs(options.small, musubi is not None)
    dit, state = build_weights("t2v-14B", shape, musubi, scratch) if musubi else (None, None)
    idle = gpu_memory_used() if device.type == "cuda" else 0
    results = []
    for index, config in enumerate(rows):
        root = scratch / f"speed-{index}"
        manifest = write_caches(root, config.sections, count=4)
        if config.engine == "musubi":
            weights = {"dit": str(dit), **musubi_helpers(scratch / "helpers", musubi)}
            result = run_musubi(config, manifest, options.steps, weights, musubi, root)
        else:
            models = ours_models(shape, state, device, fp8=True, scaled=True)
            result = run_ours(config, manifest, options.steps, models, idle, root)
        print(f"  {config.label}: {result.per_step} s/it {result.error or ''}", flush=True)
        results.append(result)
    report += [*speed_table(results, shape), f"\n(a) took {time.perf_counter() - started:.0f} s"]


def speed_table(results, shape) -> list[str]:
    lines = [
        "| configuration | s/it | nvidia-smi peak GiB | torch allocated GiB | MFU (3x fwd, bf16) "
        "| note |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        flops, per_step = step_flops(result.config, shape), result.per_step
        cells = [
            result.config.label,
            f"{per_step:.3f}" if per_step else "–",
            f"{result.smi_peak_mib / 1024:.1f}" if result.smi_peak_mib is not None else "–",
            f"{result.allocated_gib:.1f}" if result.allocated_gib is not None else "–",
            f"{flops / per_step / 1e12 / DATASHEET_TFLOPS:.1%}" if flops and per_step else "–",
            (result.error or "").replace("|", "/").replace("\n", " ")[:120],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    by = {result.config.label: result.per_step for result in results}
    lines += [f"{name}: {by[a] / by[b]:.2f}" for name, a, b in RATIOS if by.get(a) and by.get(b)]
    return lines


# ---------------------------------------------------------------- (b) numerics


def patterned_caches(
    root: Path, section: DatasetSection, trained: int, held_out: int
) -> TrainingSetManifest:
    """Latents that share one smooth pattern (a style to learn) plus their own variation, and
    random text caches; the last `held_out` items are held out."""
    width, height = section.resolution
    frames = section.target_frames[0]
    size = (16, (frames - 1) // 4 + 1, height // 8, width // 8)
    generator = torch.Generator().manual_seed(0)

    def smooth(scale: float) -> torch.Tensor:
        coarse = torch.randn(1, 16, size[1], 4, 4, generator=generator)
        return scale * torch.nn.functional.interpolate(coarse, size=size[1:], mode="trilinear")[0]

    pattern = smooth(1.0)
    entries = []
    for index in range(trained + held_out):
        item = f"clip{index:02d}"
        latent = pattern + smooth(0.5) + 0.3 * torch.randn(size, generator=generator)
        path = root / "latents" / latent_cache_name(item, width, height, 0, frames)
        save_latent_cache(path, latent.to(torch.bfloat16))
        text = write_text_cache(root / "texts", item, ClipSpec(), index)
        entries.append(ManifestEntry(
            item_id=item, kind="clip", section=section.name,
            latent_files=(str(path.relative_to(root)),), text_file=str(text.relative_to(root)),
            caption=f"patterned {item}", caption_origin="auto", caption_version="c",
            latent_version="l", text_version="t", held_out=index >= trained,
        ))  # fmt: skip
    return TrainingSetManifest(tuple(entries), root=root)


def per_step_losses(running: list[float], window: int) -> list[float]:
    """Each step's own loss back from the engine's running mean over the last `window` steps
    (what the progress reports carry): l_n = n r_n - (n-1) r_(n-1) while the window fills,
    then l_n = window (r_n - r_(n-1)) + l_(n-window)."""
    losses: list[float] = []
    for n, mean in enumerate(running, start=1):
        previous = running[n - 2] if n > 1 else 0.0
        if n <= window:
            losses.append(n * mean - (n - 1) * previous)
        else:
            losses.append(window * (mean - previous) + losses[n - 1 - window])
    return losses


def train_recording(models, request: TrainRequest) -> tuple[list[float], Path, float]:
    from wan_lora_dagster.engines.diffusers.lora_training import train_lora

    running: list[float] = []
    started = time.perf_counter()
    checkpoints = train_lora(
        models, request, lambda p: running.append(p.loss) if p.stage == "train" else None,
        lambda c: None,
    )  # fmt: skip
    return running, checkpoints[-1].path, time.perf_counter() - started


def run_numerics(options, device: torch.device, scratch: Path, report: list[str]) -> None:
    from safetensors.torch import load_file

    from wan_lora_dagster.engines.validation import validation_loss

    started = time.perf_counter()
    shape = SHAPES["small" if options.small else "t2v-1.3B"]
    section = SMALL_MOTION if options.small else MOTION
    trained = 4 if options.small else 8
    manifest = patterned_caches(scratch / "numerics", section, trained, held_out=2)
    models = ours_models(shape, None, device, fp8=False)
    runs = {}
    for label, extra in (("bf16", {}), ("fp8_compute", {"fp8_compute": True})):
        settings = TrainingSettings(
            task="t2v-1.3B", network_dim=32, network_alpha=32.0, seed=1, compile=True,
            learning_rate=options.learning_rate, max_train_steps=options.numerics_steps, **extra,
        )  # fmt: skip
        output = scratch / f"numerics-{label}"
        request = TrainRequest(manifest, settings, (section,), output, label, {})
        running, path, seconds = train_recording(models, request)
        held_out = validation_loss(models, path, manifest)
        runs[label] = (per_step_losses(running, trained), running, path, held_out)
        print(f"  {label}: {len(running)} steps in {seconds:.0f} s, held-out {held_out:.4f}")
    base_loss = validation_loss(models, None, manifest)
    (steps_a, smooth_a, path_a, held_a), (steps_b, smooth_b, path_b, held_b) = runs.values()
    step_rel = [abs(b - a) / abs(a) for a, b in zip(steps_a, steps_b, strict=True)]
    after_epoch = slice(trained, None)
    smooth_rel = [abs(b - a) / abs(a) for a, b in zip(smooth_a, smooth_b, strict=True)]
    lora_a, lora_b = load_file(path_a), load_file(path_b)
    correlation_all = _correlation(lora_a, lora_b, lambda key: True)
    correlation_up = _correlation(lora_a, lora_b, lambda key: "lora_up" in key)
    held_rel = abs(held_b - held_a) / abs(held_a)
    report += [
        f"\n(b) numerics: t2v-1.3B shapes {shape}, {section.resolution} x {section.target_frames}, "
        f"{options.numerics_steps} steps, lr {options.learning_rate}, bf16 vs fp8_compute",
        f"per-step loss relative difference: mean {statistics.mean(step_rel):.2%}, "
        f"median {statistics.median(step_rel):.2%}, max {max(step_rel):.2%}",
        f"epoch-smoothed loss curve, after the first epoch: largest relative difference "
        f"{max(smooth_rel[after_epoch] or smooth_rel):.2%}, final "
        f"{smooth_a[-1]:.4f} vs {smooth_b[-1]:.4f}",
        f"held-out validation loss: no LoRA {base_loss:.4f}, bf16 LoRA {held_a:.4f}, "
        f"fp8_compute LoRA {held_b:.4f}: relative difference {held_rel:.2%} "
        f"(goal <= {GOAL_RELATIVE:.0%})",
        f"final LoRA weights' correlation: all {correlation_all:.4f}, lora_up (zero at the "
        f"start: the learned part) {correlation_up:.4f} (goal > {GOAL_CORRELATION})",
        f"(b) took {time.perf_counter() - started:.0f} s",
    ]


def _correlation(first: dict, second: dict, wanted) -> float:
    keys = [key for key in first if wanted(key)]
    a = torch.cat([first[key].float().flatten() for key in keys])
    b = torch.cat([second[key].float().flatten() for key in keys])
    value = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    return value if math.isfinite(value) else float("nan")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes on a CPU (code paths)")
    parser.add_argument("--steps", type=int, default=None, help="steps per speed row: 8, 4 --small")
    parser.add_argument(
        "--numerics-steps", type=int, default=None, help="steps of each (b) run: 300, 4 --small"
    )
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--only", default="speed,numerics", help="speed, numerics or both")
    parser.add_argument("--with-musubi", action="store_true", help="musubi-tuner's speed row too")
    options = parser.parse_args()
    options.steps = options.steps or (4 if options.small else 8)
    options.numerics_steps = options.numerics_steps or (4 if options.small else 300)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("wan_lora_dagster.engines.diffusers.acceleration").setLevel(logging.INFO)
    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    if not cuda and not options.small:
        sys.exit("fp8_gpu: needs CUDA (or --small for the CPU run of the code paths)")
    if not cuda:
        _play_a_hopper_on_the_cpu()
    device = torch.device("cuda" if cuda else "cpu")
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="fp8-gpu-"))
    report = [f"GPU: {torch.cuda.get_device_name() if cuda else 'none (CPU, --small)'}; "
              f"torch {torch.__version__}"]  # fmt: skip
    if cuda:
        report.append(linear_timing())
        print(report[-1], flush=True)
    with tempfile.TemporaryDirectory(prefix="fp8-gpu-") as scratch:
        if "speed" in options.only:
            run_speed(options, device, Path(scratch), report)
            (out / "fp8_gpu.md").write_text("\n".join(report) + "\n")  # kept if (b) is cut short
        if "numerics" in options.only:
            torch._dynamo.reset()  # the 14B's graphs count against the recompile limit otherwise
            run_numerics(options, device, Path(scratch), report)
    report.append(f"wall {time.perf_counter() - started:.0f} s")
    (out / "fp8_gpu.md").write_text("\n".join(report) + "\n")
    print("\n" + "\n".join(report))


def linear_timing(tokens: int = 3744, dim: int = 5120, ffn: int = 13824) -> str:
    """The 14B's first feed-forward linear at 384x208x45's tokens, forward + input gradient,
    compiled: bf16 F.linear vs the fp8 path, CUDA-event timed (what the step can gain at most)."""
    from wan_lora_dagster.engines.diffusers.acceleration.fp8_matmul import fp8_linear
    from wan_lora_dagster.engines.fp8 import quantize_weight

    weight = torch.randn(ffn, dim, device="cuda", dtype=torch.bfloat16) * dim**-0.5
    values, scales = quantize_weight(weight)
    x = torch.randn(tokens, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(tokens, ffn, device="cuda", dtype=torch.bfloat16)
    timings = {}
    for name, linear in (
        ("bf16", lambda inputs: torch.nn.functional.linear(inputs, weight)),
        ("fp8", lambda inputs: fp8_linear(inputs, values, scales)),
    ):
        step = torch.compile(linear)
        for _ in range(3):
            step(x).backward(grad)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            step(x).backward(grad)
        end.record()
        torch.cuda.synchronize()
        timings[name] = start.elapsed_time(end) / 20
    flops = 2 * 2 * tokens * dim * ffn
    return (
        f"one {tokens}x{dim} @ {dim}x{ffn} linear, forward + input gradient, compiled: "
        + ", ".join(f"{k} {v:.3f} ms ({flops / v / 1e9:.0f} TFLOP/s)" for k, v in timings.items())
        + f": fp8 / bf16 {timings['fp8'] / timings['bf16']:.2f}"
    )


def _play_a_hopper_on_the_cpu() -> None:
    """--small on a CPU: fp8_compute would refuse the CPU; a fake card lets its code run."""
    from wan_lora_dagster.engines.diffusers.acceleration import fp8_compute
    from wan_lora_dagster.testing.fake_cuda import FakeCudaCapability

    fp8_compute.device_capability = FakeCudaCapability((9, 0), "a CPU playing an H100")
    os.environ.setdefault("WAN_LORA_COMPILE_BACKEND", "aot_eager")


if __name__ == "__main__":
    main()
