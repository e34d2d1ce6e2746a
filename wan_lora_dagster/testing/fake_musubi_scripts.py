"""FAKE musubi-tuner, for CPU tests: no model, but musubi's files, names and console lines.

The `fake_musubi` fixture links this file as `src/musubi_tuner/<script>.py` of a fake clone; it
acts as the script it is called as. It imitates what the engine relies on (musubi-tuner commit
30c658c): cache names from each item's basename, deleting other caches unless --keep_cache, the
trainer's lines and tqdm bar, `{name}-{epoch:06d}` / `{name}-step{step:08d}` / `{name}` files,
`-state` folders written with `random_states_0.pkl` last, counters restarting at zero on
--resume, and generation's `Video saved to:` lines
(over a real, flat gray h264 file). It imports nothing of the project.

Environment: FAKE_MUSUBI_STEP_SECONDS (sleep per step), FAKE_MUSUBI_GRANDCHILD (the trainer
starts a sleeping grandchild, as data-loader workers are, and prints its pid),
FAKE_MUSUBI_HOLD_AFTER_EPOCH (after saving that epoch's checkpoint the trainer waits, until it
is cancelled, so that a test's Ctrl-C lands mid-training at a known point however loaded the
machine is), FAKE_MUSUBI_HUB_ERROR (fail as transformers does offline), FAKE_MUSUBI_CRASH (raise),
FAKE_MUSUBI_ARGV_LOG (append its argv there), FAKE_MUSUBI_LATENT_CHANNELS and FAKE_MUSUBI_TEXT_DIM
(the shapes of its random caches: 16 and 4096 as Wan 2.1's, or the tiny model's).

Caches hold random tensors under musubi's names and shapes; a LoRA file holds, for every linear
of every block of the `--dit` file (read from its header), a random pair of the trained rank,
so our in-process evaluator can measure it on the DiT (a DiT without such tensors gets one
placeholder tensor instead).
"""

import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import time
import tomllib
import zlib
from pathlib import Path

HOLD_SECONDS = 900  # a bound for a test that never cancels, not a timing


def main() -> None:
    if log := os.environ.get("FAKE_MUSUBI_ARGV_LOG"):
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps([Path(sys.argv[0]).stem, *sys.argv[1:]]) + "\n")
    script = Path(sys.argv[0]).stem
    if os.environ.get("FAKE_MUSUBI_CRASH"):
        raise RuntimeError("CUDA out of memory (fake)")
    {
        "wan_cache_latents": cache_latents,
        "wan_cache_text_encoder_outputs": cache_texts,
        "wan_train_network": train,
        "wan_generate_video": generate,
    }[script]()


def write_safetensors(path: Path, metadata: dict[str, str], values: int = 4) -> None:
    header = {
        "lora_unet_blocks_0_self_attn_q.lora_down.weight": {
            "dtype": "F32",
            "shape": [values],
            "data_offsets": [0, 4 * values],
        },
        "__metadata__": metadata,
    }
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(
        struct.pack("<Q", len(blob)) + blob + struct.pack(f"<{values}f", *range(values))
    )


def write_tensors(path: Path, tensors: dict, metadata: dict[str, str]) -> None:
    """A safetensors file of float32 numpy arrays, written by hand (the fake imports no torch)."""
    header, blobs, offset = {}, [], 0
    for key, array in tensors.items():
        data = array.astype("<f4").tobytes()
        header[key] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(blobs))


def random_array(shape: tuple[int, ...], seed_text: str, scale: float = 1.0):
    import numpy as np

    generator = np.random.default_rng(zlib.crc32(seed_text.encode()))
    return generator.standard_normal(shape).astype(np.float32) * scale


def datasets(config: str) -> list[tuple[dict, list[dict]]]:
    tables = tomllib.loads(Path(config).read_text(encoding="utf-8"))["datasets"]
    found = []
    for table in tables:
        listing = table.get("video_jsonl_file") or table["image_jsonl_file"]
        rows = [json.loads(line) for line in Path(listing).read_text(encoding="utf-8").splitlines()]
        found.append((table, rows))
    return found


def fail_like_the_hub() -> None:
    if os.environ.get("FAKE_MUSUBI_HUB_ERROR"):
        print("Traceback (most recent call last):", file=sys.stderr)
        print(
            "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and "
            "couldn't find them in the cached files.",
            file=sys.stderr,
        )
        sys.exit(1)


def cache_latents() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset_config", required=True)
    parser.add_argument("--vae", required=True)
    parser.add_argument("--clip")
    parser.add_argument("--keep_cache", action="store_true")
    args = parser.parse_args()
    for table, rows in datasets(args.dataset_config):
        folder = Path(table["cache_directory"])
        folder.mkdir(parents=True, exist_ok=True)
        width, height = table["resolution"]
        written = set()
        for row in rows:
            media = Path(row.get("video_path") or row["image_path"])
            media.read_bytes()  # musubi decodes every item it caches
            frames = table["target_frames"][0] if "video_path" in row else 1
            window = f"_00000-{frames:03d}" if "video_path" in row else ""
            name = f"{media.stem}{window}_{width:04d}x{height:04d}_wan.safetensors"
            shape = ((frames - 1) // 4 + 1, height // 8, width // 8)
            channels = int(os.environ.get("FAKE_MUSUBI_LATENT_CHANNELS", "16"))
            latent = random_array((channels, *shape), name)
            key = f"latents_{shape[0]}x{shape[1]}x{shape[2]}_float32"
            write_tensors(
                folder / name, {key: latent}, {"architecture": "wan", "format_version": "1.0.1"}
            )
            written.add(name)
            print(f"INFO:fake:cached {name}")
        remove_others(folder, "*_wan.safetensors", written, args.keep_cache)


def cache_texts() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset_config", required=True)
    parser.add_argument("--t5", required=True)
    parser.add_argument("--fp8_t5", action="store_true")
    parser.add_argument("--keep_cache", action="store_true")
    args = parser.parse_args()
    fail_like_the_hub()
    for table, rows in datasets(args.dataset_config):
        folder = Path(table["cache_directory"])
        folder.mkdir(parents=True, exist_ok=True)
        written = set()
        for row in rows:
            name = f"{Path(row['video_path']).stem}_wan_te.safetensors"
            metadata = {
                "architecture": "wan",
                "caption1": row["caption"],
                "format_version": "1.0.1",
            }
            tokens = max(len(row["caption"].split()), 1)
            dim = int(os.environ.get("FAKE_MUSUBI_TEXT_DIM", "4096"))
            embedding = random_array((tokens, dim), row["caption"])
            write_tensors(folder / name, {"varlen_t5_float32": embedding}, metadata)
            written.add(name)
        remove_others(folder, "*_wan_te.safetensors", written, args.keep_cache)


def remove_others(folder: Path, pattern: str, written: set[str], keep_cache: bool) -> None:
    for path in folder.glob(pattern):
        if path.name not in written and not keep_cache:
            path.unlink()
            print(f"INFO:fake:Removed old cache file: {path}")


def train() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--dataset_config", "--output_dir", "--output_name", "--resume", "--dit"):
        parser.add_argument(name)
    parser.add_argument("--network_dim", type=int, default=4)
    for name in ("--max_train_epochs", "--save_every_n_epochs", "--save_every_n_steps"):
        parser.add_argument(name, type=int)
    parser.add_argument("--max_train_steps", type=int, default=1600)
    parser.add_argument("--save_state", action="store_true")
    args, _ = parser.parse_known_args()
    if args.resume:
        if not (Path(args.resume) / "random_states_0.pkl").is_file():
            sys.exit(f"fake: incomplete state {args.resume}")
        print(f"INFO:fake:resume training from local state: {args.resume}")
    if os.environ.get("FAKE_MUSUBI_GRANDCHILD"):
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"fake data-loader worker pid {worker.pid}", flush=True)
    per_epoch = steps_per_epoch(args.dataset_config)
    total = (
        args.max_train_epochs * per_epoch
        if args.max_train_epochs is not None
        else args.max_train_steps
    )
    epochs = math.ceil(total / per_epoch)
    print("running training / 学習開始")
    print(f"  num batches per epoch / 1epochのバッチ数: {per_epoch}")
    print(f"  num epochs / epoch数: {epochs}")
    print(f"  total optimization steps / 学習ステップ数: {total}")
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    pause = float(os.environ.get("FAKE_MUSUBI_STEP_SECONDS", "0"))
    step = 0  # musubi's counters start at zero, resumed or not
    for epoch in range(1, epochs + 1):
        print(f"\nepoch {epoch}/{epochs}")
        for _ in range(per_epoch):
            step += 1
            time.sleep(pause)
            loss = 1 / (step + 1)
            bar = f"steps: {100 * step // total:3d}%|{'█' * (10 * step // total):<10}|"
            print(
                f"\r{bar} {step}/{total} [00:01<00:01,  0.20s/it, avr_loss={loss:.3g}]",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if args.save_every_n_steps and step % args.save_every_n_steps == 0:
                save(args, f"{args.output_name}-step{step:08d}", step, epoch - 1, per_epoch)
            if step >= total:
                break
        if args.save_every_n_epochs and epoch % args.save_every_n_epochs == 0 and epoch < epochs:
            save(args, f"{args.output_name}-{epoch:06d}", step, epoch, per_epoch)
        if epoch == int(os.environ.get("FAKE_MUSUBI_HOLD_AFTER_EPOCH", "0")):
            time.sleep(HOLD_SECONDS)
    if args.save_state:
        save_state(output / f"{args.output_name}-state")
    save(args, args.output_name, step, epochs, per_epoch, state=False)


def steps_per_epoch(config: str) -> int:
    """As musubi: every latent with a text cache beside it, repeated, in batches per dataset."""
    total = 0
    for table, _ in datasets(config):
        folder = Path(table["cache_directory"])
        suffix_tokens = 3 if "video_jsonl_file" in table else 2  # [range_]WxH_wan.safetensors
        latents = [
            path
            for path in folder.glob("*_wan.safetensors")
            if (folder / f"{item_key(path.name, suffix_tokens)}_wan_te.safetensors").exists()
        ]
        total += math.ceil(len(latents) * table["num_repeats"] / table["batch_size"])
    return total


def item_key(cache_name: str, suffix_tokens: int) -> str:
    return "_".join(cache_name.split("_")[:-suffix_tokens])


def save(args, name: str, step: int, epoch: int, per_epoch: int, state: bool = True) -> None:
    path = Path(args.output_dir) / f"{name}.safetensors"
    print(f"\nsaving checkpoint: {path}", flush=True)
    metadata = {
        "ss_steps": str(step),
        "ss_epoch": str(epoch),
        "ss_num_batches_per_epoch": str(per_epoch),
        "ss_network_module": "networks.lora_wan",
    }
    lora = lora_tensors(args.dit, args.network_dim, step)
    if lora:
        write_tensors(path, lora, metadata)
    else:
        write_safetensors(path, metadata)
    if state and args.save_state:
        save_state(Path(args.output_dir) / f"{name}-state")


_LINEAR = re.compile(
    r"^(?:model\.diffusion_model\.)?blocks\.(\d+)\."
    r"(self_attn\.[qkvo]|cross_attn\.(?:[qkvo]|k_img|v_img)|ffn\.[02])\.weight$"
)


def lora_tensors(dit: str | None, rank: int, step: int) -> dict:
    """musubi's LoRA of every block linear of the DiT, random for this step (none if the DiT
    file has no such linears)."""
    import numpy as np

    if not dit:
        return {}
    with open(dit, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    tensors = {}
    for key, entry in header.items():
        match = _LINEAR.match(key)
        if not match or len(entry["shape"]) != 2:
            continue
        out_features, in_features = entry["shape"]
        name = f"lora_unet_blocks_{match.group(1)}_{match.group(2).replace('.', '_')}"
        tensors[f"{name}.lora_down.weight"] = random_array(
            (rank, in_features), f"{name}{step}", 0.3
        )
        tensors[f"{name}.lora_up.weight"] = random_array((out_features, rank), f"{step}{name}", 0.3)
        tensors[f"{name}.alpha"] = np.array(float(rank), dtype=np.float32)
    return tensors


def save_state(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "optimizer.bin").write_bytes(b"optimizer")
    (folder / "random_states_0.pkl").write_bytes(b"rng")  # accelerate writes this last


def generate() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--from_file", required=True)
    parser.add_argument("--save_path", required=True)
    parser.add_argument("--lora_weight", nargs="*")
    parser.add_argument("--lora_multiplier", type=float, nargs="*")
    parser.add_argument("--video_size", type=int, nargs=2, default=[256, 256])
    parser.add_argument("--video_length", type=int, default=9)
    args, _ = parser.parse_known_args()
    fail_like_the_hub()
    lines = Path(args.from_file).read_text(encoding="utf-8").splitlines()
    prompts = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for index, line in enumerate(prompts):
        prompt, _, seed = line.partition(" --d ")
        path = Path(args.save_path) / f"20261122-000000-{index:03d}_{seed}.mp4"
        lora = f"{args.lora_weight[0]} x{args.lora_multiplier[0]}" if args.lora_weight else "none"
        write_gray_video(path, args.video_size, args.video_length, f"{prompt}\nlora: {lora}")
        print(f"INFO:fake:Video saved to: {path}")


def write_gray_video(path: Path, size: list[int], num_frames: int, comment: str) -> None:
    """A real h264 file of flat gray frames, so the eval step can decode and thumbnail it; the
    prompt and LoRA it was asked for go in its `comment` tag, for tests to read."""
    import av
    import numpy as np

    height, width = size
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frame = np.full((height, width, 3), 128, dtype=np.uint8)
        for _ in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


if __name__ == "__main__":
    main()
