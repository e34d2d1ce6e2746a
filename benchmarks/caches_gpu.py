"""Caching and captioning speed on one GPU: ours beside musubi-tuner's cache scripts, one run.

- latent caching, clips/s, at 384x208x45 and 768x416x21: our diffusers engine's batched,
  prefetching encoder (engines/diffusers/latent_batches.py; the Wan 2.1 VAE, and the Wan 2.2 VAE
  for ours alone: musubi-tuner has no TI2V-5B) vs musubi-tuner's `wan_cache_latents.py`, run
  through our MusubiEngine as a project runs it;
- text caching, captions/s: our UMT5-XXL encoder (bf16, and fp8 T5) vs musubi-tuner's
  `wan_cache_text_encoder_outputs.py`;
- captioning, clips/s, for BLIP-2, Qwen2-VL, Qwen2.5-VL and Qwen3-VL at their real sizes, at
  each batch size tried, the best one marked.

Random weights of the real shapes, no download: our VAEs are diffusers' AutoencoderKLWan with the
Wan 2.1/2.2 configs, our T5 is transformers' UMT5EncoderModel with umt5-xxl's; musubi's VAE and
T5 are random files of its own classes' state dicts (wan_lora_dagster/testing/gpu_fixtures.py).
Both sides tokenize with the same offline tokenizer (no hub access).

Two rates per row: "steady" counts the items written between the first and the last progress
report (what a 30,000-clip library sees), "wall" all items over the whole call (ours excludes
building the random model in memory; musubi's includes its start-up and loading its files).

    MUSUBI_TUNER_DIR=... python benchmarks/caches_gpu.py [--clips 24] [--budget 480]
    python benchmarks/caches_gpu.py --small      # CPU, tiny shapes, ours only: ~1 min
Writes the tables to $OUT/caches_gpu.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engines" / "musubi"))

import torch
from _cache_models import (
    CAPTION_WORDS,
    musubi_cache_settings,
    ours_text_models,
    ours_vae_models,
    timed,
)
from _captioner_models import CAPTIONERS, build_captioner
from PIL import Image

from wan_lora_dagster.engines.base import TextJob
from wan_lora_dagster.engines.diffusers.latent_batches import LATENT_BATCH_SIZE, encode_latent_jobs
from wan_lora_dagster.engines.diffusers.text_encoding import TEXT_BATCH_SIZE, encode_texts
from wan_lora_dagster.engines.musubi.dataset_toml import TEXT_BATCH_SIZE as MUSUBI_TEXT_BATCH
from wan_lora_dagster.engines.musubi.engine import MusubiEngine
from wan_lora_dagster.testing.gpu_fixtures import (
    ClipSpec,
    make_project,
    musubi_checkout,
    synthetic_frames,
)

SHAPES = (ClipSpec(384, 208, 49, 45), ClipSpec(768, 416, 25, 21))
SMALL_SHAPES = (ClipSpec(64, 32, 13, 9), ClipSpec(64, 48, 9, 5))
CAPTION_BATCHES = (1, 8, 16)
MAX_NEW_TOKENS = 40  # a one-sentence caption
SMALL_NEW_TOKENS = 8
FRAMES_PER_CLIP = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="CPU, tiny shapes, ours only")
    parser.add_argument("--clips", type=int, help="clips per latent shape (default 24, small 3)")
    parser.add_argument("--captions", type=int, help="captions to encode (default 512, small 16)")
    parser.add_argument("--budget", type=float, default=450, help="seconds; later parts skipped")
    options = parser.parse_args()
    cuda = torch.cuda.is_available() and not options.small
    if not cuda and not options.small:
        sys.exit("caches_gpu: needs CUDA (or --small for the CPU run)")
    device = torch.device("cuda" if cuda else "cpu")
    musubi = musubi_checkout() if cuda else None
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="caches-gpu-"))
    report = Report(out, options, device, started=time.perf_counter())
    if options.small:
        report.note("--small: tiny shapes and the tiny offline captioners under the real names")
    if not musubi:
        why = "--small (CPU)" if not cuda else "no MUSUBI_TUNER_DIR checkout"
        report.note(f"musubi-tuner: not run: {why}")
    with tempfile.TemporaryDirectory(prefix="caches-gpu-") as scratch_name:
        scratch = Path(scratch_name)
        parts = (latent_rows, text_rows, caption_rows)
        for part in parts:
            if report.left() < 30:
                report.note(f"{part.__name__}: not run: out of the time budget")
                continue
            try:
                part(report, options, device, musubi, scratch)
            except Exception as error:  # a part that fails leaves the others' rows
                traceback.print_exc()
                report.note(f"{part.__name__}: failed: {type(error).__name__}: {error}")
            free(device)
    print("\n" + report.write())


class Report:
    """The tables so far, rewritten to $OUT after every row (a cut-short run keeps its rows)."""

    def __init__(self, out: Path, options, device: torch.device, started: float):
        self.out, self.options, self.device, self.started = out, options, device, started
        self.rows: dict[str, list[str]] = {"latents": [], "texts": [], "captions": []}
        self.notes: list[str] = []

    def left(self) -> float:
        return self.options.budget - (time.perf_counter() - self.started)

    def add(self, table: str, *cells: object) -> None:
        self.rows[table].append("| " + " | ".join(str(cell) for cell in cells) + " |")
        print(self.rows[table][-1], flush=True)
        self.write()

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  {text}", flush=True)

    def write(self) -> str:
        gpu = torch.cuda.get_device_name() if self.device.type == "cuda" else "none (CPU)"
        heads = {
            "latents": "| shape | side | VAE | batch | clips | steady clips/s | wall clips/s |",
            "texts": "| side | T5 | batch | captions | steady captions/s | wall captions/s |",
            "captions": "| captioner | batch | clips | clips/s | best |",
        }
        text = "\n\n".join(
            "\n".join([heads[name], "|" + "---|" * heads[name].count(" | ") + "---|", *rows])
            for name, rows in self.rows.items()
        )
        text += "\n\n" + "\n".join(f"- {note}" for note in self.notes)
        text += f"\n\nGPU: {gpu}; torch {torch.__version__}; "
        text += f"wall {time.perf_counter() - self.started:.0f} s\n"
        (self.out / "caches_gpu.md").write_text(text)
        return text


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def latent_rows(report: Report, options, device, musubi, scratch: Path) -> None:
    count = options.clips or (3 if options.small else 24)
    for shape in SMALL_SHAPES if options.small else SHAPES:
        spec = ClipSpec(shape.width, shape.height, shape.num_frames, shape.target_frames, count)
        label = f"{spec.width}x{spec.height}x{spec.target_frames}"
        project = make_project(scratch / f"latents-{label}", spec)
        for vae in ("wan2.1", "wan2.2"):
            models = ours_vae_models(vae, device, small=options.small)
            jobs = _moved(project.latent_jobs, scratch / f"ours-{label}-{vae}")
            steady, wall = timed(partial(encode_latent_jobs, models, jobs))
            report.add("latents", label, "ours", vae, LATENT_BATCH_SIZE, count, steady, wall)
            del models
            free(device)
        if musubi and report.left() > 60:
            engine = MusubiEngine(musubi_cache_settings(musubi, scratch), scratch / "musubi-work")
            jobs = _moved(project.latent_jobs, scratch / f"musubi-{label}")
            steady, wall = timed(partial(engine.encode_latents, jobs))
            report.add("latents", label, "musubi", "wan2.1", 1, count, steady, wall)


def _moved(jobs, cache_dir: Path) -> list:
    return [replace(job, cache_dir=cache_dir) for job in jobs]


def text_rows(report: Report, options, device, musubi, scratch: Path) -> None:
    count = options.captions or (16 if options.small else 512)
    captions = [
        " ".join(CAPTION_WORDS[(index * 7 + word) % len(CAPTION_WORDS)] for word in range(length))
        for index, length in enumerate((12 + (index * 37) % 60) for index in range(count))
    ]

    def jobs(folder: str) -> list[TextJob]:
        return [TextJob(f"c{i:05d}", text, scratch / folder) for i, text in enumerate(captions)]

    models = ours_text_models(device, scratch, small=options.small)
    for t5 in ("bf16", "fp8"):
        if t5 == "fp8":
            models.store_text_encoder_in_fp8()
        folder_jobs = jobs(f"texts-ours-{t5}")
        steady, wall = timed(partial(encode_texts, models.wan, folder_jobs))
        report.add("texts", "ours", t5, TEXT_BATCH_SIZE, count, steady, wall)
    del models
    free(device)
    if musubi and report.left() > 90:
        settings = musubi_cache_settings(musubi, scratch, text_encoder=True)
        engine = MusubiEngine(settings, scratch / "musubi-work")
        musubi_jobs = jobs("texts-musubi")
        steady, wall = timed(partial(engine.encode_texts, musubi_jobs))
        report.add("texts", "musubi", "bf16", MUSUBI_TEXT_BATCH, count, steady, wall)


def caption_rows(report: Report, options, device, musubi, scratch: Path) -> None:
    spec = ClipSpec(64, 48, 9, 5) if options.small else ClipSpec(768, 416, 9, 5)
    batches = (1, 2) if options.small else CAPTION_BATCHES
    clips = [
        [Image.fromarray(frame) for frame in synthetic_frames(spec, seed)[:FRAMES_PER_CLIP]]
        for seed in range(max(batches) * 2)
    ]
    for name in CAPTIONERS:  # one at a time: the 7-8B models take 16-17 GB each
        if report.left() < 30:
            report.note(f"{name}: not run: out of the time budget")
            continue
        tokens = SMALL_NEW_TOKENS if options.small else MAX_NEW_TOKENS
        captioner = build_captioner(name, str(device), tokens, options.small, scratch)
        rates = {batch: _caption_rate(captioner, clips, batch, device) for batch in batches}
        best = max(rates, key=rates.get)
        for batch, rate in rates.items():
            mark = "yes" if batch == best else ""
            report.add("captions", name, batch, 2 * batch, f"{rate:.2f}", mark)
        del captioner
        free(device)


def _caption_rate(captioner, clips: list, batch: int, device) -> float:
    """Clips/s over two batches of `batch` clips, after one warm-up batch."""
    prompt = "Describe this video clip in one sentence."
    captioner.caption_batch(clips[:batch], prompt)
    _sync(device)
    started = time.perf_counter()
    for start in (0, batch):
        captioner.caption_batch(clips[start : start + batch], prompt)
    _sync(device)
    return 2 * batch / (time.perf_counter() - started)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
