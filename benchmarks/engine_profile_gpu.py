"""Where a diffusers-engine step goes on one GPU, and what changes it: the t2v-1.3B at 384x208x45.

`engine_gpu.py` found the 1.3B at about 12 % model FLOP utilisation and the 14B at about 38 %:
the small model's step is not bound by its matmuls. This script trains the same real-shape
configuration (random weights, rank 32, batch 1, compiled blocks) through `train_lora` in several
variants, one table row each, and profiles two steps of each with `torch.profiler`:
- s/it (median after the warm-up) and MFU as engine_gpu.py counts them;
- GPU busy: the sum of the kernels' times over the profiled steps' wall time (below 100 % the GPU
  waits for the CPU: launches, Python, synchronisation);
- the kernels that take the most GPU time, written to $OUT/engine_profile_kernels.txt.

Variants are settings of `[training]` plus, where named "(probe)", a change tried here by
patching, to measure it before it becomes one.

    python benchmarks/engine_profile_gpu.py [--steps 10] [--only compile,no-checkpointing]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from _gpu_models import SHAPES, ours_models, write_caches
from engine_gpu import DATASHEET_TFLOPS, MOTION, WARMUP, Config, settings_for, step_flops

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.engines.diffusers import lora_training
from wan_lora_dagster.testing.gpu_fixtures import HEADER

PROFILED_STEPS = (6, 8)  # profile from the report of step 6 to that of step 8: two whole steps


@contextmanager
def tf32_matmuls():
    """(probe) fp32 matmuls (the LoRA's, which peft runs in its fp32 weights' dtype) on TF32."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@contextmanager
def bf16_autocast():
    """(probe) the forward under bf16 autocast: the LoRA's fp32 weights computed in bf16, as
    accelerate's mixed precision does for musubi-tuner."""
    original = lora_training.flow_matching_loss

    def autocast_loss(*args, **kwargs):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return original(*args, **kwargs)

    lora_training.flow_matching_loss = autocast_loss
    try:
        yield
    finally:
        lora_training.flow_matching_loss = original


@contextmanager
def cuda_graphs():
    """(probe) inductor's CUDA graphs over each compiled block (what mode="reduce-overhead"
    turns on): one replay per block instead of a launch per kernel. Run it in a process of its
    own (`--only graphs`): dynamo reuses a block's compiled code across variants."""
    import torch._inductor.config as inductor

    before = inductor.triton.cudagraphs
    inductor.triton.cudagraphs = True
    try:
        yield
    finally:
        inductor.triton.cudagraphs = before


VARIANTS = {
    "compile": ({"compile": True}, ()),
    "compile, no checkpointing": ({"compile": True, "gradient_checkpointing": False}, ()),
    "compile, tf32 (probe)": ({"compile": True}, (tf32_matmuls,)),
    "compile, bf16 autocast (probe)": ({"compile": True}, (bf16_autocast,)),
    "compile, bf16 autocast, no checkpointing (probe)": (
        {"compile": True, "gradient_checkpointing": False},
        (bf16_autocast,),
    ),
    "compile + CUDA graphs (probe)": ({"compile": True}, (cuda_graphs,)),
    "compile + CUDA graphs - no checkpointing (probe)": (
        {"compile": True, "gradient_checkpointing": False},
        (cuda_graphs,),
    ),
}


class ProfiledSteps:
    """A progress callback that stamps each step and profiles the steps in PROFILED_STEPS."""

    def __init__(self):
        self.stamps = [time.perf_counter()]
        self.profiler = torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        )
        self.window: tuple[float, float] | None = None

    def __call__(self, progress) -> None:
        if progress.stage != "train":
            return
        torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        if progress.done == PROFILED_STEPS[0]:
            self.profiler.start()
            self.started = time.perf_counter()
        elif progress.done == PROFILED_STEPS[1]:
            self.profiler.stop()
            self.window = (self.started, time.perf_counter())

    @property
    def per_step(self) -> float:
        steps = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]
        return statistics.median(steps[WARMUP:])

    def gpu_busy(self) -> float:
        kernels = [e for e in self.profiler.events() if e.device_type.name == "CUDA"]
        busy_us = sum(e.time_range.elapsed_us() for e in kernels)
        return busy_us / 1e6 / (self.window[1] - self.window[0])

    def top_kernels(self, rows: int = 25) -> str:
        return self.profiler.key_averages().table(sort_by="self_device_time_total", row_limit=rows)


def run_variant(name, options, probes, shape, steps, scratch, out) -> dict:
    config = Config(name, "t2v-1.3B", "ours", (MOTION,), options)
    manifest = write_caches(scratch / name.replace(" ", "_"), config.sections, count=4)
    models = ours_models(shape, None, torch.device("cuda"), False)
    settings = settings_for(config, steps)
    folder = scratch / f"lora-{len(os.listdir(scratch))}"
    request = TrainRequest(manifest, settings, config.sections, folder, "bench", dict(HEADER))
    steps_seen = ProfiledSteps()
    torch.cuda.reset_peak_memory_stats()
    with ExitStack() as stack:
        for probe in probes:
            stack.enter_context(probe())
        lora_training.train_lora(models, request, steps_seen, lambda c: None)
    with open(out / "engine_profile_kernels.txt", "a") as kernels:
        kernels.write(f"\n## {name}\n{steps_seen.top_kernels()}\n")
    flops = step_flops(config, shape)
    return {
        "variant": name,
        "s/it": steps_seen.per_step,
        "MFU": flops / steps_seen.per_step / 1e12 / DATASHEET_TFLOPS,
        "GPU busy": steps_seen.gpu_busy(),
        "allocated GiB": torch.cuda.max_memory_allocated() / 1024**3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", default="", help="variants whose names hold one of these")
    options = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("engine_profile_gpu: needs CUDA")
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="engine-profile-"))
    wanted = [part for part in options.only.split(",") if part] or [""]
    rows = []
    with tempfile.TemporaryDirectory(prefix="engine-profile-") as scratch:
        for name, (settings, probes) in VARIANTS.items():
            if not any(part in name for part in wanted):
                continue
            try:
                row = run_variant(name, settings, probes, SHAPES["t2v-1.3B"], options.steps,
                                  Path(scratch), out)  # fmt: skip
            except Exception as error:  # one failed variant is reported, the others still run
                row = {"variant": name, "error": f"{type(error).__name__}: {str(error)[:160]}"}
            rows.append(row)
            print(_format(row), flush=True)
    report = "\n".join(_format(row) for row in rows)
    (out / "engine_profile.md").write_text(report + "\n")


def _format(row: dict) -> str:
    if "error" in row:
        return f"| {row['variant']} | failed: {row['error']} |"
    return (
        f"| {row['variant']} | {row['s/it']:.3f} s/it | MFU {row['MFU']:.1%} | "
        f"GPU busy {row['GPU busy']:.0%} | {row['allocated GiB']:.1f} GiB |"
    )


if __name__ == "__main__":
    main()
