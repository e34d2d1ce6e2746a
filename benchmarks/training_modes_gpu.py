"""Training modes on one GPU, side by side in one run: the full fine-tune (`network = "full"`)
beside the LoRA at the 1.3B and the 14B, and LoKr and DoRA beside the LoRA at the 1.3B.

Every row trains our diffusers engine (`train_lora`, the product path) from random weights of the
real shapes (benchmarks/_gpu_models.py, the fixtures' fan-in rule) and random latent and text
caches of one 384x208x45 section, batch 1, gradient checkpointing, no compile. A row stops after
`--steps` steps, before any checkpoint is saved (a 14B model folder and its state are ~90 GB).

Columns: s/it (median after WARMUP steps, from the progress callback), torch's peak allocated and
reserved memory (reserved: what nvidia-smi would show less the CUDA context), and what the memory
check predicted before the first step (its log line, or its refusal: then the row did not fit).
LoKr and DoRA rows are skipped, saying why, where this checkout does not accept
`network = "lokr"` or `dora = true` yet.

    python benchmarks/training_modes_gpu.py [--steps 8] [--budget 540] [--only 1.3B]
    python benchmarks/training_modes_gpu.py --small   # tiny shapes on a CPU, about a minute

Writes the table to $OUT/training_modes_gpu.md as well.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _gpu_models import SHAPES, ModelShape, diffusers_transformer, keep_in_fp32, write_caches
from engine_gpu import WARMUP, Result, _EstimateLog, _step_stamper
from pydantic import ValidationError

from wan_lora_dagster.engines.base import TrainRequest
from wan_lora_dagster.engines.wan_models import WanModels
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.gpu_fixtures import HEADER

MOTION = DatasetSection(name="motion", source="clips", resolution=(384, 208), target_frames=(45,))
SMALL_MOTION = DatasetSection(
    name="motion", source="clips", resolution=(64, 32), target_frames=(9,)
)
ACCELERATION_LOGGER = "wan_lora_dagster.engines.diffusers.acceleration"


@dataclass(frozen=True)
class Row:
    label: str
    task: str
    options: dict = field(default_factory=dict)


def rows(small: bool) -> list[Row]:
    blocks = SHAPES["small" if small else "t2v-14B"].layers
    half = list(range(blocks // 2))
    swap = max(1, blocks // 4)
    eight_bit = {"optimizer": "adamw8bit"}
    return [
        Row("1.3B LoRA r32", "t2v-1.3B"),
        Row("1.3B full, fp32 master weights, AdamW", "t2v-1.3B", {"network": "full"}),
        Row("1.3B full, bf16, AdamW8bit", "t2v-1.3B",
            {"network": "full", "full_dtype": "bf16", **eight_bit}),
        Row("1.3B LoKr", "t2v-1.3B", {"network": "lokr"}),
        Row("1.3B DoRA r32", "t2v-1.3B", {"dora": True}),
        Row("14B LoRA r32", "t2v-14B"),
        Row("14B full, bf16, AdamW8bit, activations on CPU", "t2v-14B",
            {"network": "full", "full_blocks": list(range(blocks)), "full_dtype": "bf16",
             "gradient_checkpointing_cpu_offload": True, **eight_bit}),
        Row(f"14B full_blocks 0-{blocks // 2 - 1}, bf16, AdamW8bit, {swap} frozen swapped",
            "t2v-14B",
            {"network": "full", "full_blocks": half, "full_dtype": "bf16", "blocks_to_swap": swap,
             "gradient_checkpointing_cpu_offload": True, **eight_bit}),
    ]  # fmt: skip


class _Enough(Exception):
    """Raised from the progress callback after the timed steps: no checkpoint, no state."""


def settings_for(row: Row, steps: int) -> TrainingSettings:
    """ValidationError where this checkout does not know a row's option (LoKr, DoRA)."""
    return TrainingSettings(
        task=row.task, network_dim=32, network_alpha=32.0, max_train_steps=steps + 1, seed=1,
        gradient_checkpointing=True, **row.options,
    )  # fmt: skip


def random_models(shape: ModelShape, device: torch.device) -> WanModels:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    transformer = diffusers_transformer(shape, None).to(device=device, dtype=dtype)
    keep_in_fp32(transformer)
    models = WanModels(Path("unused"), device, dtype, fp8_base=False)
    models.__dict__["transformer"] = transformer.eval().requires_grad_(False)
    models.__dict__["model_index"] = {"_class_name": "WanPipeline"}  # text-to-video
    return models


def run_row(row: Row, models: WanModels, manifest, section, steps: int, out: Path) -> Result:
    from wan_lora_dagster.engines.diffusers.lora_training import train_lora

    result = Result(row)  # engine_gpu's Result: any object with a label serves as its config
    try:
        settings = settings_for(row, steps)
    except ValidationError as error:
        result.error = "skipped: not accepted here yet: " + error.errors()[0]["msg"][:120]
        return result
    request = TrainRequest(manifest, settings, (section,), out / "run", "bench", dict(HEADER))
    estimates = _EstimateLog()
    logging.getLogger(ACCELERATION_LOGGER).addHandler(estimates)
    stamps: list[float] = []
    stamp = _step_stamper(stamps)

    def progress(report) -> None:
        stamp(report)
        if report.stage == "train" and report.done >= steps:
            raise _Enough()

    cuda = models.device.type == "cuda"
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        stamps.append(time.perf_counter())
        train_lora(models, request, progress, lambda checkpoint: None)
    except _Enough:
        pass
    except Exception as error:  # a failed row is reported, the others still run
        result.error = f"{type(error).__name__}: {str(error)[:300]}"
        needed = re.search(r"needs about ([\d.]+) GiB", str(error))
        estimates.estimate = float(needed.group(1)) if needed else estimates.estimate
    finally:
        logging.getLogger(ACCELERATION_LOGGER).removeHandler(estimates)
    result.seconds = [b - a for a, b in itertools.pairwise(stamps)]
    if cuda:
        result.allocated_gib = torch.cuda.max_memory_allocated() / 1024**3
        result.smi_peak_mib = torch.cuda.max_memory_reserved() / 1024**2  # reserved, in MiB
    result.estimate_gib = estimates.estimate
    return result


def table(results: list[Result]) -> str:
    columns = ("configuration", "s/it", "peak allocated GiB", "peak reserved GiB",
               "memory check GiB", "steps timed", "note")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for result in results:
        per_step = result.per_step
        cells = [
            result.config.label,
            f"{per_step:.3f}" if per_step else "–",
            _gib(result.allocated_gib),
            _gib(result.smi_peak_mib, 1024),
            _gib(result.estimate_gib),
            str(len(result.seconds[WARMUP:])),
            (result.error or "").replace("|", "/").replace("\n", " ")[:200],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gib(value: float | None, scale: float = 1.0) -> str:
    return f"{value / scale:.1f}" if value is not None else "–"


def ratios(results: list[Result]) -> str:
    by = {result.config.label: result.per_step for result in results}
    lora13, lora14 = by.get("1.3B LoRA r32"), by.get("14B LoRA r32")
    lines = []
    for label, per_step in by.items():
        base = lora13 if label.startswith("1.3B") else lora14
        if per_step and base and "LoRA r32" not in label:
            lines.append(f"{label} / LoRA r32: {per_step / base:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes on a CPU")
    parser.add_argument("--steps", type=int, default=8, help="steps per row")
    parser.add_argument("--budget", type=float, default=540, help="seconds; later rows skipped")
    parser.add_argument("--only", default="", help="only labels holding one of these (a,b)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(ACCELERATION_LOGGER).setLevel(logging.INFO)
    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    if not cuda and not options.small:
        sys.exit("training_modes_gpu: needs CUDA (or --small for the CPU run)")
    if not cuda:
        torch.set_num_threads(1)  # a busy 2-core machine: one thread is steadier
    device = torch.device("cuda" if cuda else "cpu")
    section = SMALL_MOTION if options.small else MOTION
    wanted = options.only.split(",")
    chosen = [row for row in rows(options.small) if any(part in row.label for part in wanted)]
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="training-modes-"))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="training-modes-") as scratch_name:
        scratch = Path(scratch_name)
        manifest = write_caches(scratch, (section,), count=4)
        for task in dict.fromkeys(row.task for row in chosen):
            shape = SHAPES["small" if options.small else task]
            models = None
            for row in (row for row in chosen if row.task == task):
                if time.perf_counter() - started > options.budget:
                    results.append(Result(row, error="skipped: out of the time budget"))
                    continue
                models = models or random_models(shape, device)
                results.append(run_row(row, models, manifest, section, options.steps, scratch))
                print(f"  {row.label}: {results[-1].per_step} s/it {results[-1].error or ''}")
                write_report(results, out, started)
            del models
    print("\n" + write_report(results, out, started))


def write_report(results: list[Result], out: Path, started: float) -> str:
    cuda = torch.cuda.is_available()
    report = table(results) + "\n\n" + ratios(results)
    report += f"\n\nGPU: {torch.cuda.get_device_name() if cuda else 'none (CPU)'}; "
    report += f"torch {torch.__version__}; median after {WARMUP} steps; "
    report += f"wall {time.perf_counter() - started:.0f} s"
    (out / "training_modes_gpu.md").write_text(report + "\n")
    return report


if __name__ == "__main__":
    main()
