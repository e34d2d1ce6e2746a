"""Real musubi-tuner image-to-video eval videos from a start image, and our validation loss of
the same musubi checkpoint, at the real i2v-14B shapes on one GPU, from ONE random DiT.

Weights (random values, real shapes, each built by musubi-tuner's OWN classes on the GPU and
saved at once, in parallel): the i2v-14B DiT as fp8 e4m3 (musubi_validation_gpu.py), the UMT5-XXL
encoder in bf16 (gpu_fixtures.py), the open-clip xlm-roberta ViT-H/14 CLIP in fp16 and the VAE
(i2v_weights.py), offline tokenizers in a folder laid out like the Wan repository; a LoRA with
musubi's key names (rank 32). Then:

1. eval videos through the product path (`MusubiEngine.sample`, as the `eval_videos` asset calls
   it): one `wan_generate_video` run per LoRA strength (0 and 1), fp8 base weights (`--fp8`) and
   `--fp8_t5`, as the 24 GB path, from a synthetic PNG start frame; each video decoded with PyAV
   (frames, size) and its first frame compared with the start image and with another image
   (mean absolute difference, 0-255: random weights make noise, so the numbers are reported,
   not judged);
2. the held-out validation loss with and without that LoRA (musubi_validation_gpu.measure).

Prints each phase's seconds as it ends, then a JSON (videos, times, peak GPU memory), also
written to $OUT/musubi_i2v_gpu.json with the videos and musubi's output log beside it.

`--small` runs the same code on a CPU at tiny shapes (64x64, 5 frames): musubi's generation asks
for a GPU when its T5 module is imported, and the real shapes do not fit a small machine, so a
FAKE sitecustomize on the subprocesses' path (FAKE_CPU_SHAPES) stands in for that device query
and shrinks musubi's i2v-14B DiT, UMT5, CLIP and VAE configs (keeping the widths the DiT's inputs
need), and the weights run in float32 (FAKE_CPU_SHAPES says why). Needs MUSUBI_TUNER_DIR and
musubi-tuner's own requirements (torchvision, easydict, einops, ftfy, av, opencv).

    MUSUBI_TUNER_DIR=... python benchmarks/musubi_i2v_gpu.py [--small]
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from musubi_validation_gpu import (
    SMALL_DIT,
    build_dit,
    build_lora,
    command_line,
    held_out_cache,
    measure,
)

from wan_lora_dagster.engines.base import SampleRequest, SampleVideo, StartImage
from wan_lora_dagster.engines.musubi import MusubiEngine
from wan_lora_dagster.errors import EngineError
from wan_lora_dagster.recipe.evaluation import EvalSettings
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.gpu_fixtures import ClipSpec, random_text_encoder, synthetic_frames
from wan_lora_dagster.testing.gpu_watch import GpuMemoryPoller
from wan_lora_dagster.testing.i2v_weights import random_clip, random_vae, wan_tokenizer_folder

EVAL = EvalSettings(
    prompts=("a dragon turns its head towards the camera",),
    strengths=(0.0, 1.0),
    seeds=(42,),
    width=480,
    height=272,  # musubi sizes an I2V video by the image's aspect: 480x272 stays 480x272
    num_frames=17,
    num_inference_steps=3,
    guidance_scale=5.0,
)
NEEDED_DISK_GB = 33  # DiT 16.4, UMT5 11.4, CLIP 2.4, VAE 0.25, caches and videos
SMALL_EVAL = EVAL.model_copy(update={"width": 64, "height": 64, "num_frames": 5})
# --small only: musubi's i2v-14B at tiny shapes. The DiT embeds 4096-wide text and 1280-wide
# CLIP features, so the UMT5 keeps dim 4096 and the CLIP vision_dim 1280. A CPU runs none of it
# in half precision: its layer_norm takes no fp16 weights, and it ignores `autocast(dtype=
# float32)`, which musubi's DiT relies on to embed time and text with fp8 or bf16 weights and
# bf16 text; so on a CPU the CLIP and the UMT5 run in float32 (no --fp8_t5), and the DiT is a
# float32 file sampled without --fp8.
FAKE_CPU_SHAPES = """
import torch

if not torch.cuda.is_available():
    torch.cuda.current_device = lambda: 0  # a default argument in musubi's wan/modules/t5.py
try:
    from functools import partial

    import musubi_tuner.wan.modules.clip as clip
    import musubi_tuner.wan.modules.t5 as t5
    import musubi_tuner.wan.modules.vae as vae
    from musubi_tuner.wan.configs import WAN_CONFIGS
except ImportError:  # a Python without musubi-tuner on its path
    pass
else:
    WAN_CONFIGS["i2v-14B"].update(DIT)
    WAN_CONFIGS["i2v-14B"].update(clip_dtype=torch.float32, t5_dtype=torch.float32)
    t5.umt5_xxl = partial(t5.umt5_xxl, vocab_size=512, dim_attn=256, dim_ffn=256, num_heads=2,
                          encoder_layers=1)
    clip.clip_xlm_roberta_vit_h_14 = partial(
        clip.clip_xlm_roberta_vit_h_14, vision_layers=2, vision_heads=2, vision_mlp_ratio=1,
        vocab_size=512, text_dim=64, text_heads=2, text_layers=1, embed_dim=64)
    full_vae = vae.WanVAE_
    vae.WanVAE_ = lambda **config: full_vae(**{**config, "dim": 8})  # latents keep z_dim 16
"""


def main() -> None:
    small, musubi = command_line(__doc__, "musubi_i2v_gpu")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    free = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    if free < (1 if small else NEEDED_DISK_GB):
        sys.exit(f"musubi_i2v_gpu: {free:.0f} GB free in {tempfile.gettempdir()}: set TMPDIR")
    results: dict = {"small": small, "phases_s": {}, "weights": {}}
    with tempfile.TemporaryDirectory(prefix="wan-lora-bench-i2v-") as scratch:
        root = Path(scratch)
        if small:
            fake_cpu_shapes(root / "fake-cpu-shapes")
        with phase(results, "build_weights"):
            weights = build_weights(root / "weights", musubi, small, results)
        lora = build_lora(Path(weights["dit"]), root / "lora-i2v-000001.safetensors")
        evaluation = SMALL_EVAL if small else EVAL
        start, other = start_images(root / "images", evaluation)
        settings = engine_settings(weights, small)
        log = (out or root) / "musubi_i2v_output.log"
        with phase(results, "eval_videos"), open(log, "w", encoding="utf-8", buffering=1) as output:
            engine = MusubiEngine(settings, root / "musubi", on_output=echo_to(output))
            request = SampleRequest(lora, evaluation, root / "eval", (StartImage("start", start),))
            videos = eval_videos(engine, request, results)
        results["videos"] = [describe(video, start, other, out) for video in videos]
        with phase(results, "validation_loss"):
            manifest = held_out_cache(root, small)
            results["validation"] = measure(Path(weights["dit"]), lora, manifest, root)
    report(results, out)


@contextmanager
def phase(results: dict, name: str):
    started = time.perf_counter()
    print(f"{name}...", flush=True)
    yield
    seconds = results["phases_s"][name] = round(time.perf_counter() - started, 1)
    print(f"{name}: {seconds} s", flush=True)


def fake_cpu_shapes(folder: Path) -> None:
    """FAKE_CPU_SHAPES as the sitecustomize of every Python this process starts."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"DIT = {SMALL_DIT!r}\n{FAKE_CPU_SHAPES}")
    existing = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *([existing] if existing else [])])


def build_weights(folder: Path, musubi: Path, small: bool, results: dict) -> dict[str, str]:
    """The four weight files at once (each a subprocess, mostly writing): name -> path."""
    folder.mkdir(parents=True)
    dtype = "float32" if small else "float8_e4m3fn"  # FAKE_CPU_SHAPES says why
    builders = {
        "dit": lambda: str(build_dit(folder / "dit_i2v_14B.safetensors", musubi, small, dtype)),
        "t5": lambda: random_text_encoder(folder, musubi),
        "clip": lambda: random_clip(folder, musubi),
        "vae": lambda: random_vae(folder, musubi),
    }
    started, paths = time.perf_counter(), {}
    with ThreadPoolExecutor(len(builders)) as pool:
        futures = {pool.submit(build): name for name, build in builders.items()}
        for future in as_completed(futures):
            name, paths[futures[future]] = futures[future], future.result()
            gigabytes = round(Path(paths[name]).stat().st_size / 1e9, 3)
            seconds = round(time.perf_counter() - started, 1)
            results["weights"][name] = {"gb": gigabytes, "built_after_s": seconds}
            print(f"  built {name}: {gigabytes} GB after {seconds} s", flush=True)
    paths["tokenizer"] = wan_tokenizer_folder(folder / "tokenizer")
    return paths


def start_images(folder: Path, evaluation: EvalSettings) -> tuple[Path, Path]:
    """The start frame (a synthetic frame at the eval size) and a different one to compare."""
    folder.mkdir()
    spec = ClipSpec(width=evaluation.width, height=evaluation.height, num_frames=1)
    paths = []
    for seed, name in ((0, "start.png"), (1, "other.png")):
        Image.fromarray(synthetic_frames(spec, seed)[0]).save(folder / name)
        paths.append(folder / name)
    return paths[0], paths[1]


def engine_settings(weights: dict[str, str], small: bool) -> TrainingSettings:
    """The 24 GB path's: fp8 base weights and T5 (not on a CPU: FAKE_CPU_SHAPES says why)."""
    return TrainingSettings(
        engine="musubi", task="i2v-14B", musubi_dir=os.environ["MUSUBI_TUNER_DIR"],
        dit=weights["dit"], vae=weights["vae"], t5=weights["t5"], clip=weights["clip"],
        tokenizer=weights["tokenizer"], fp8_base=not small, fp8_t5=not small,
        mixed_precision="bf16",
    )  # fmt: skip


def echo_to(log):
    """Every line musubi prints into the log; the saved videos and errors on the terminal."""

    def on_output(line: str) -> None:
        log.write(line + "\n")
        if "Video saved" in line or "Error" in line:
            print(f"  musubi: {line}", flush=True)

    return on_output


def eval_videos(engine: MusubiEngine, request: SampleRequest, results: dict) -> list[SampleVideo]:
    """MusubiEngine.sample, as the eval_videos asset calls it, timed per wan_generate_video run."""
    ended = [time.perf_counter()]

    def on_progress(report) -> None:  # the engine reports after each strength's run
        ended.append(time.perf_counter())
        print(
            f"  strength run {report.done}/{report.total}: {ended[-1] - ended[-2]:.1f} s",
            flush=True,
        )

    memory = GpuMemoryPoller() if torch.cuda.is_available() else None
    videos = []
    try:
        with memory or nullcontext():
            videos = engine.sample(request, on_progress)
    except EngineError as error:  # the validation loss is still worth its minutes on the GPU
        print(f"eval videos failed: {error}", flush=True)
        results["eval_error"] = str(error)
    results["generation_run_s"] = [round(b - a, 1) for a, b in itertools.pairwise(ended)]
    results["generation_peak_gpu_mib"] = memory.peak_above_baseline if memory else None
    return videos


def describe(video: SampleVideo, start: Path, other: Path, out: Path | None) -> dict:
    """Decoded with PyAV: frames, size, and its first frame against each image."""
    with av.open(str(video.path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    first = frames[0].astype(np.float32)
    height, width = first.shape[:2]

    def difference(image: Path) -> float:
        pixels = np.asarray(Image.open(image).convert("RGB").resize((width, height)))
        return round(float(np.abs(first - pixels.astype(np.float32)).mean()), 2)

    if out is not None:  # the copy comes back from the device machine
        shutil.copyfile(video.path, out / video.path.name)
    return {
        "path": str(out / video.path.name if out else video.path),
        "strength": video.strength,
        "seed": video.seed,
        "frames": len(frames),
        "width_x_height": f"{width}x{height}",
        "first_frame_mean_abs_diff_vs_start_image": difference(start),
        "first_frame_mean_abs_diff_vs_other_image": difference(other),
    }


def report(results: dict, out: Path | None) -> None:
    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name()
    text = json.dumps(results, indent=1)
    print(text)
    if out is not None:
        (out / "musubi_i2v_gpu.json").write_text(text)


if __name__ == "__main__":
    main()
