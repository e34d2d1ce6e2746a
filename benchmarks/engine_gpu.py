"""Training speed on one GPU: musubi-tuner vs. our diffusers engine, side by side in one run.

Both engines train from the SAME random weights of the real shapes (built once here from
musubi-tuner's own model classes, converted to diffusers' layout for ours with diffusers' own
converter) and the SAME latent and text caches (musubi's format, random values of the real
shapes), LoRA rank 32, batch 1, gradient checkpointing, AdamW, sdpa, through each engine's product
path: `MusubiEngine.train` (accelerate launch wan_train_network.py) and `train_lora`.

For each configuration, one table row:
- s/it: median of the step times after WARMUP steps (the time between two progress reports,
  read the same way for both engines: musubi's progress line, our progress callback);
- peak GPU memory: nvidia-smi's most used on GPU 0 above what was in use before the run started
  (the same measure for both; it includes each side's CUDA context), and for ours torch's peak
  allocated, and the memory check's estimate;
- MFU: model FLOPs per step over s/it over the GPU's bf16 dense peak (989 TFLOP/s, the H200
  datasheet); model FLOPs = 3 x forward (forward + backward, NOT counting the recomputation of
  gradient checkpointing), forward = 2 x tokens x block linear parameters + 4 x tokens^2 x dim
  per block (self-attention) + the cross-attention to 512 text tokens. A large bf16 matmul is
  timed once for the practical ceiling.

Needs CUDA and a musubi-tuner checkout (MUSUBI_TUNER_DIR, or --musubi). `--small` runs tiny
shapes on a CPU (our engine only) to debug the script. Writes the table to $OUT/engine_gpu.md.

    MUSUBI_TUNER_DIR=... python benchmarks/engine_gpu.py [--steps 11] [--budget 540]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _gpu_models import SHAPES, ModelShape, build_weights, ours_models, write_caches

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.gpu_fixtures import DIT_NAME, HEADER, musubi_checkout, random_weights
from wan_lora_dagster.testing.gpu_watch import GpuMemoryPoller, gpu_memory_used

DATASHEET_TFLOPS = 989.0  # H200 SXM, bf16 dense
TEXT_TOKENS = 512
WARMUP = 3
OUT_DIR: dict[str, Path] = {}
PRACTICAL: dict[str, float | None] = {}


MOTION = DatasetSection(name="motion", source="clips", resolution=(384, 208), target_frames=(45,))
GHIBLI = (
    DatasetSection(name="stills", source="stills", resolution=(768, 768)),
    DatasetSection(name="wide", source="clips", resolution=(768, 416), target_frames=(1, 21)),
    MOTION,
)
SMALL_MOTION = DatasetSection(
    name="motion", source="clips", resolution=(64, 32), target_frames=(9,)
)
SMALL_MIXED = (
    DatasetSection(name="stills", source="stills", resolution=(64, 64)),
    DatasetSection(name="wide", source="clips", resolution=(64, 48), target_frames=(1, 5)),
    SMALL_MOTION,
)


@dataclass(frozen=True)
class Config:
    label: str
    task: str
    engine: str  # "musubi" or "ours"
    sections: tuple[DatasetSection, ...]
    options: dict = field(default_factory=dict)


def configs(small: bool) -> list[Config]:
    motion, mixed = ((SMALL_MOTION,), SMALL_MIXED) if small else ((MOTION,), GHIBLI)
    swap = 2 if small else 10  # the small model has 4 blocks
    fp8_musubi = {"fp8_base": True, "fp8_scaled": True}
    ours_14b = {"compile": True, "fp8_base": True}
    return [
        Config("14B musubi fp8 scaled", "t2v-14B", "musubi", motion, fp8_musubi),
        Config("14B musubi fp8 scaled, swap 10", "t2v-14B", "musubi", motion,
               {**fp8_musubi, "blocks_to_swap": swap}),
        Config("14B ours compile+fp8", "t2v-14B", "ours", motion, ours_14b),
        Config("14B ours compile+fp8, swap 10", "t2v-14B", "ours", motion,
               {**ours_14b, "blocks_to_swap": swap}),
        Config("14B ours compile+fp8, swap 10, offload, 8bit", "t2v-14B", "ours", motion,
               {**ours_14b, "blocks_to_swap": swap, "gradient_checkpointing_cpu_offload": True,
                "optimizer": "adamw8bit"}),
        Config("1.3B musubi bf16", "t2v-1.3B", "musubi", motion),
        Config("1.3B ours compile", "t2v-1.3B", "ours", motion, {"compile": True}),
        Config("1.3B ours compile, no checkpointing", "t2v-1.3B", "ours", motion,
               {"compile": True, "gradient_checkpointing": False}),
        Config("1.3B ours compile, LoKr", "t2v-1.3B", "ours", motion,
               {"compile": True, "network": "lokr"}),
        Config("1.3B ours compile, LoHa", "t2v-1.3B", "ours", motion,
               {"compile": True, "network": "loha"}),
        Config("1.3B ours compile, DoRA", "t2v-1.3B", "ours", motion,
               {"compile": True, "dora": True}),
        Config("1.3B Ghibli mix musubi bf16", "t2v-1.3B", "musubi", mixed),
        Config("1.3B Ghibli mix ours compile", "t2v-1.3B", "ours", mixed, {"compile": True}),
    ]  # fmt: skip


@dataclass
class Result:
    config: Config
    seconds: list[float] = field(default_factory=list)
    smi_peak_mib: int | None = None
    allocated_gib: float | None = None
    estimate_gib: float | None = None
    error: str | None = None

    @property
    def per_step(self) -> float | None:
        measured = self.seconds[WARMUP:]
        return statistics.median(measured) if measured else None


# ---------------------------------------------------------------- the two engines


def settings_for(config: Config, steps: int, **paths) -> TrainingSettings:
    return TrainingSettings(
        engine="diffusers" if config.engine == "ours" else "musubi",
        task=config.task,
        network_dim=32, network_alpha=32.0, max_train_steps=steps, seed=1,
        **{"gradient_checkpointing": True, **paths, **config.options},
    )  # fmt: skip


def run_musubi(
    config: Config, manifest, steps: int, weights: dict, musubi: Path, out: Path
) -> Result:
    from wan_lora_dagster.engines.musubi.engine import MusubiEngine

    result = Result(config)
    settings = settings_for(config, steps, musubi_dir=str(musubi), **weights)
    request = TrainRequest(manifest, settings, config.sections, out / "lora", "bench", dict(HEADER))
    lines: list[str] = []
    engine = MusubiEngine(settings, out / "work", on_output=lines.append)
    stamps: list[float] = []
    before = gpu_memory_used()
    try:
        with GpuMemoryPoller() as poller:
            engine.train(request, _step_stamper(stamps), lambda c: None)
    except Exception as error:  # a failed row is reported, the others still run
        result.error = f"{type(error).__name__}: {str(error)[:200]}"
        print("\n".join(lines[-30:]))
    result.seconds = [b - a for a, b in itertools.pairwise(stamps)]
    result.smi_peak_mib = poller.peak - before
    return result


def _step_stamper(stamps: list[float]):
    """A progress callback noting when each new step is first reported (musubi's progress line
    is printed several times a step)."""
    last = {"step": 0}

    def on_progress(progress) -> None:
        if progress.stage == "train" and progress.done > last["step"]:
            last["step"] = progress.done
            stamps.append(time.perf_counter())

    return on_progress


class _EstimateLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.estimate: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"estimated peak GPU memory: ([\d.]+) GiB", record.getMessage())
        if found:
            self.estimate = float(found.group(1))


def run_ours(config: Config, manifest, steps: int, models, idle_mib: int, out: Path) -> Result:
    from wan_lora_dagster.engines.diffusers.lora_training import train_lora

    result = Result(config)
    settings = settings_for(config, steps)
    request = TrainRequest(manifest, settings, config.sections, out / "lora", "bench", dict(HEADER))
    estimates = _EstimateLog()
    logging.getLogger("wan_lora_dagster.engines.diffusers.acceleration").addHandler(estimates)
    stamps: list[float] = []
    cuda = models.device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        with GpuMemoryPoller() if cuda else _Nothing() as poller:
            stamps.append(time.perf_counter())
            train_lora(models, request, _step_stamper(stamps), lambda c: None)
    except Exception as error:
        result.error = f"{type(error).__name__}: {str(error)[:200]}"
        logging.getLogger(__name__).exception("our run failed")
    result.seconds = [b - a for a, b in itertools.pairwise(stamps)]
    if cuda:
        result.smi_peak_mib = poller.peak - idle_mib
        result.allocated_gib = torch.cuda.max_memory_allocated() / 1024**3
    result.estimate_gib = estimates.estimate
    return result


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


# ---------------------------------------------------------------- FLOPs and the table


def tokens_of(section: DatasetSection, frames: int | None) -> int:
    width, height = section.resolution
    latent_frames = 1 if not frames else (frames - 1) // 4 + 1
    return latent_frames * (height // 16) * (width // 16)


def forward_flops(shape: ModelShape, tokens: int) -> float:
    d, f = shape.dim, shape.ffn_dim
    on_tokens = 4 * d * d + 2 * d * d + 2 * d * f  # self-attn qkvo, cross-attn q and o, ffn
    on_text = 2 * d * d  # cross-attn k and v over the text
    attention = 4 * tokens * tokens * d + 4 * tokens * TEXT_TOKENS * d
    return shape.layers * (2 * tokens * on_tokens + 2 * TEXT_TOKENS * on_text + attention)


def step_flops(config: Config, shape: ModelShape) -> float | None:
    """Model FLOPs of one step (3 x forward), for single-shape configurations."""
    if len(config.sections) != 1 or len(config.sections[0].target_frames) != 1:
        return None
    section = config.sections[0]
    return 3 * forward_flops(shape, tokens_of(section, section.target_frames[0]))


def matmul_tflops() -> float:
    size = 8192
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * size**3 * 20 / (start.elapsed_time(end) / 1000) / 1e12


def table(results: list[Result], shapes: dict, practical: float | None) -> str:
    columns = (
        "configuration", "s/it", "nvidia-smi peak GiB", "torch allocated GiB", "estimate GiB",
        "MFU (3x fwd)", "steps timed", "note",
    )  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for result in results:
        config, per_step = result.config, result.per_step
        flops = step_flops(config, shapes[config.task])
        mfu = f"{flops / per_step / 1e12 / DATASHEET_TFLOPS:.1%}" if flops and per_step else "–"
        cells = [
            config.label,
            f"{per_step:.3f}" if per_step else "–",
            f"{result.smi_peak_mib / 1024:.1f}" if result.smi_peak_mib is not None else "–",
            f"{result.allocated_gib:.1f}" if result.allocated_gib is not None else "–",
            f"{result.estimate_gib:.1f}" if result.estimate_gib is not None else "–",
            mfu,
            str(len(result.seconds[WARMUP:])),
            (result.error or "").replace("|", "/").replace("\n", " ")[:160],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if practical:
        lines.append(
            f"\nbf16 8192^3 matmul here: {practical:.0f} TFLOP/s "
            f"({practical / DATASHEET_TFLOPS:.0%} of the {DATASHEET_TFLOPS:.0f} datasheet peak)"
        )
    return "\n".join(lines)


def ratios(results: list[Result]) -> str:
    by = {r.config.label: r.per_step for r in results}
    pairs = [
        ("14B ours compile+fp8", "14B musubi fp8 scaled", "14B ours / musubi fp8 (goal <= 0.5)"),
        ("14B ours compile+fp8, swap 10", "14B ours compile+fp8",
         "14B ours swap 10 / no swap (goal <= 1.3)"),
        ("14B musubi fp8 scaled, swap 10", "14B musubi fp8 scaled", "14B musubi swap 10 / no swap"),
        ("1.3B ours compile", "1.3B musubi bf16", "1.3B ours / musubi"),
        ("1.3B ours compile, no checkpointing", "1.3B musubi bf16",
         "1.3B ours without checkpointing / musubi with"),
        ("1.3B Ghibli mix ours compile", "1.3B Ghibli mix musubi bf16", "Ghibli mix ours / musubi"),
    ]  # fmt: skip
    return "\n".join(
        f"{name}: {by[a] / by[b]:.2f}" for a, b, name in pairs if by.get(a) and by.get(b)
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes, our engine, on a CPU")
    parser.add_argument("--steps", type=int, default=11, help="steps per configuration")
    parser.add_argument("--budget", type=float, default=540, help="seconds; later rows skipped")
    parser.add_argument(
        "--only", default="", help="only labels holding one of these (comma-separated)"
    )
    parser.add_argument(
        "--musubi", default=None, help="musubi-tuner checkout (or MUSUBI_TUNER_DIR)"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("wan_lora_dagster.engines.diffusers.acceleration").setLevel(logging.INFO)
    started = time.perf_counter()
    if options.musubi:
        os.environ["MUSUBI_TUNER_DIR"] = options.musubi
    musubi = musubi_checkout()
    cuda = torch.cuda.is_available()
    if not cuda and not options.small:
        sys.exit("engine_gpu: needs CUDA (or --small for the CPU debug run)")
    device = torch.device("cuda" if cuda else "cpu")
    idle = gpu_memory_used() if cuda else 0
    practical = matmul_tflops() if cuda else None
    if cuda:
        torch.cuda.empty_cache()
    wanted = options.only.split(",")
    chosen = [c for c in configs(options.small) if any(part in c.label for part in wanted)]
    if not (cuda and musubi):
        print(f"  musubi rows skipped: {'no CUDA' if not cuda else 'no MUSUBI_TUNER_DIR'}")
        chosen = [c for c in chosen if c.engine == "ours"]
    shapes = {task: SHAPES["small"] if options.small else SHAPES[task] for task in SHAPES}
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="engine-gpu-"))
    OUT_DIR["path"] = out
    PRACTICAL["tflops"] = practical
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="engine-gpu-") as scratch_name:
        scratch = Path(scratch_name)
        helpers = (
            musubi_helpers(scratch / "helpers", musubi)
            if any(c.engine == "musubi" for c in chosen)
            else {}
        )
        for task in dict.fromkeys(c.task for c in chosen):
            rows = [c for c in chosen if c.task == task]
            remaining = options.budget - (time.perf_counter() - started)
            if remaining < 60:
                results += [replace_result(c, "skipped: out of the time budget") for c in rows]
                continue
            results += run_task(task, shapes[task], rows, options, musubi, helpers, device,
                                idle, scratch, started)  # fmt: skip
    print("\n" + write_report(results, options, started))


def write_report(results: list[Result], options, started: float) -> str:
    """The table so far, written to $OUT (a run cut short still leaves its rows)."""
    cuda = torch.cuda.is_available()
    shapes = {task: SHAPES["small"] if options.small else SHAPES[task] for task in SHAPES}
    report = table(results, shapes, PRACTICAL.get("tflops")) + "\n\n" + ratios(results)
    report += f"\n\nGPU: {torch.cuda.get_device_name() if cuda else 'none (CPU)'}; "
    report += f"torch {torch.__version__}; {options.steps} steps per row, median after {WARMUP}; "
    report += f"wall {time.perf_counter() - started:.0f} s"
    (OUT_DIR["path"] / "engine_gpu.md").write_text(report + "\n")
    return report


def musubi_helpers(folder: Path, musubi: Path) -> dict[str, str]:
    """musubi's engine checks for a VAE and a T5 file (training from caches opens neither):
    the fixtures' random VAE, without their 1.3B transformer (a placeholder stands for it)."""
    folder.mkdir(parents=True)
    (folder / DIT_NAME).write_bytes(b"placeholder")
    weights = random_weights(folder, musubi)
    return {"vae": weights["vae"], "t5": weights["t5"]}


def replace_result(config: Config, reason: str) -> Result:
    return Result(config, error=reason)


def run_task(task, shape, rows, options, musubi, helpers, device, idle, scratch, started):

    results = []
    # musubi's model classes import only with CUDA: --small on a CPU builds ours at random
    cuda = device.type == "cuda"
    dit, state = build_weights(task, shape, musubi, scratch) if musubi and cuda else (None, None)
    weights = {"dit": str(dit), "vae": helpers.get("vae"), "t5": helpers.get("t5")}
    for index, config in enumerate(rows):
        manifests_root = scratch / f"{task}-{index}"
        manifest = write_caches(manifests_root, config.sections, count=4)
        if time.perf_counter() - started > options.budget:
            results.append(replace_result(config, "skipped: out of the time budget"))
            continue
        if config.engine == "musubi":
            result = run_musubi(config, manifest, options.steps, weights, musubi, manifests_root)
        else:
            fp8 = config.options.get("fp8_base", False)
            scaled = config.options.get("fp8_scaled", False)
            models = ours_models(shape, state, device, fp8, scaled)
            result = run_ours(config, manifest, options.steps, models, idle, manifests_root)
            del models
        print(f"  {config.label}: {result.per_step} s/it {result.error or ''}", flush=True)
        results.append(result)
        write_report(results, options, started)
    return results


if __name__ == "__main__":
    main()
