"""Our in-process validation loss of a musubi-tuner checkpoint at the real i2v-14B shapes (GPU):
seconds to load `[training] dit` and to measure one held-out clip, and the peak GPU memory with
fp8 base weights, beside the 24 GB of the card such a LoRA is trained on.

The DiT is built by musubi-tuner's OWN WanModel (on the meta device, then one random tensor per
key: wan_lora_dagster/testing/gpu_fixtures.py) and saved as fp8 e4m3 safetensors, as Comfy-Org
ships the 14B models; the LoRA has musubi's key names for every linear of every block (rank 32);
the held-out cache is a random one of a 480x832, 81-frame clip with its image condition and CLIP
features, in musubi's cache format. `--small` builds a 2-block DiT of width 256 instead (a CPU
smoke run of the same code). Needs MUSUBI_TUNER_DIR (and CUDA unless --small). Writes
$OUT/musubi_validation_gpu.json where $OUT is set.

    MUSUBI_TUNER_DIR=... python benchmarks/musubi_validation_gpu.py [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wan_lora_dagster.engines.musubi import MusubiEngine
from wan_lora_dagster.formats.cache_files import latent_cache_name, text_cache_name
from wan_lora_dagster.formats.lora import save_lora
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.formats.musubi_cache import save_latent_cache, save_text_cache
from wan_lora_dagster.recipe.training import TrainingSettings
from wan_lora_dagster.testing.gpu_fixtures import musubi_checkout

BUILD_DIT = """
import json, sys, torch
if not torch.cuda.is_available():  # wan/modules/t5.py asks for the device at import
    torch.cuda.current_device = lambda: 0
from accelerate import init_empty_weights
from musubi_tuner.wan.configs import WAN_CONFIGS
from musubi_tuner.wan.modules.model import WanModel
from safetensors.torch import save_file
from wan_lora_dagster.testing.gpu_fixtures import _random_state

config, small = WAN_CONFIGS["i2v-14B"], json.loads(sys.argv[2])
dims = small or dict(dim=config.dim, ffn_dim=config.ffn_dim, num_heads=config.num_heads,
                     num_layers=config.num_layers)
with init_empty_weights():
    model = WanModel(model_type="i2v", eps=config.eps, freq_dim=config.freq_dim,
                     in_dim=config.in_dim, out_dim=config.out_dim, text_len=config.text_len,
                     attn_mode="torch", **dims)
shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
state = _random_state(shapes, seed=0, dtype=getattr(torch, sys.argv[3]))  # fp8: 16 GB here
save_file(state, sys.argv[1])
"""
LINEARS = ("self_attn_q", "self_attn_k", "self_attn_v", "self_attn_o", "cross_attn_q",
           "cross_attn_k", "cross_attn_v", "cross_attn_o", "cross_attn_k_img", "cross_attn_v_img",
           "ffn_0", "ffn_2")  # fmt: skip
RANK = 32
SMALL_DIT = dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2)  # --small: 2 blocks of width 256


def main() -> None:
    small, musubi = command_line(__doc__, "musubi_validation_gpu")
    results: dict = {"small": small}
    with tempfile.TemporaryDirectory(prefix="wan-lora-bench-validation-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        dit = build_dit(root / "dit_fp8.safetensors", musubi, small)
        results["build_dit_s"] = time.perf_counter() - started
        results["dit_gb"] = dit.stat().st_size / 1e9
        print(
            f"built the DiT: {results['build_dit_s']:.1f} s, {results['dit_gb']:.1f} GB", flush=True
        )
        lora = build_lora(dit, root / "lora-i2v-000001.safetensors")
        manifest = held_out_cache(root, small)
        results.update(measure(dit, lora, manifest, root))
    report(results)


def command_line(doc: str, script: str) -> tuple[bool, Path]:
    """--small, and the musubi-tuner checkout; exits where the run cannot work."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    small = parser.parse_args().small
    musubi = musubi_checkout()
    if musubi is None or not (small or torch.cuda.is_available()):
        sys.exit(f"{script}: needs MUSUBI_TUNER_DIR and a CUDA GPU (or --small)")
    return small, musubi


def build_dit(path: Path, musubi: Path, small: bool, dtype: str = "float8_e4m3fn") -> Path:
    repository = Path(__file__).resolve().parents[1]  # wan_lora_dagster.testing
    paths = [str(musubi / "src"), str(repository), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    dims = json.dumps(SMALL_DIT if small else {})
    command = [sys.executable, "-c", BUILD_DIT, str(path), dims, dtype]
    subprocess.run(command, check=True, env=environment)
    return path


def dit_shapes(path: Path) -> dict[str, list[int]]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return {key: entry["shape"] for key, entry in header.items()}


def build_lora(dit: Path, path: Path) -> Path:
    """musubi's key names, as its networks.lora_wan saves them, with random small weights."""
    shapes = dit_shapes(dit)
    generator = torch.Generator().manual_seed(1)
    state = {}
    for block in range(1 + max(int(key.split(".")[1]) for key in shapes if key.startswith("b"))):
        for name in LINEARS:
            out_features, in_features = shapes[f"blocks.{block}.{name_to_key(name)}.weight"]
            prefix = f"lora_unet_blocks_{block}_{name}"
            down = torch.randn(RANK, in_features, generator=generator) * in_features**-0.5
            state[f"{prefix}.lora_down.weight"] = down.to(torch.bfloat16)
            up = torch.randn(out_features, RANK, generator=generator) * 0.01
            state[f"{prefix}.lora_up.weight"] = up.to(torch.bfloat16)
            state[f"{prefix}.alpha"] = torch.tensor(float(RANK))
    save_lora(path, state, {"ss_network_module": "networks.lora_wan"})
    return path


def name_to_key(name: str) -> str:
    """`cross_attn_k_img` -> `cross_attn.k_img`, `ffn_0` -> `ffn.0`."""
    for module in ("self_attn", "cross_attn", "ffn"):
        if name.startswith(module + "_"):
            return f"{module}.{name.removeprefix(module + '_')}"
    raise ValueError(name)


def held_out_cache(root: Path, small: bool) -> TrainingSetManifest:
    width, height, frames = (64, 64, 5) if small else (832, 480, 81)
    latent_frames = (frames - 1) // 4 + 1
    shape = (latent_frames, height // 8, width // 8)
    generator = torch.Generator().manual_seed(2)
    latent_file = root / "cache" / latent_cache_name("held", width, height, 0, frames)
    latent_file.parent.mkdir(parents=True)
    mask = torch.zeros(4, *shape)
    mask[:, 0] = 1
    save_latent_cache(
        latent_file,
        torch.randn(16, *shape, generator=generator).to(torch.bfloat16),
        clip_embedding=torch.randn(257, 1280, generator=generator).to(torch.bfloat16),
        image_latent=torch.cat([mask, torch.randn(16, *shape, generator=generator)]).bfloat16(),
    )
    text_file = root / "cache" / text_cache_name("held")
    save_text_cache(text_file, torch.randn(24, 4096, generator=generator).to(torch.bfloat16))
    entry = ManifestEntry(
        item_id="held",
        kind="clip",
        section="video",
        latent_files=(str(latent_file.relative_to(root)),),
        text_file=str(text_file.relative_to(root)),
        caption="held-out clip",
        caption_origin="auto",
        caption_version="c",
        latent_version="l",
        text_version="t",
        held_out=True,
    )
    return TrainingSetManifest((entry,), root=root)


def measure(dit: Path, lora: Path, manifest: TrainingSetManifest, root: Path) -> dict:
    unused = root / "unused.pth"  # the loss reads the DiT alone: caches replace VAE, T5, CLIP
    unused.write_bytes(b"unused")
    settings = TrainingSettings(
        engine="musubi", task="i2v-14B", dit=str(dit), vae=str(unused), t5=str(unused),
        clip=str(unused), fp8_base=True, mixed_precision="bf16",
    )  # fmt: skip
    engine = MusubiEngine(settings, root / "musubi")
    cuda = torch.cuda.is_available()
    started = time.perf_counter()
    with_lora = engine.validation_loss(lora, manifest, settings)  # loads the DiT first
    first = time.perf_counter()
    print(f"loaded the DiT and measured with the LoRA: {first - started:.1f} s", flush=True)
    without = engine.validation_loss(None, manifest, settings)
    return {
        "load_dit_fp8_and_loss_with_lora_s": first - started,
        "loss_without_lora_s": time.perf_counter() - first,
        "loss_with_lora": with_lora,
        "loss_without_lora": without,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "gpu": torch.cuda.get_device_name() if cuda else None,
    }


def report(results: dict) -> None:
    text = json.dumps(results, indent=1)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "musubi_validation_gpu.json").write_text(text)


if __name__ == "__main__":
    main()
