"""What checking the files a record made costs, next to reading the records alone.

A project-like tree: N records (one per clip), each naming F cache files of S bytes under out/.
Measured side by side: reading every record (what freshness did before), reading and checking
every file (a stat each: what `wan-lora status` and `wan-lora run` do now), checking after every
file was touched (same size, new mtime: each is hashed again), and writing the records (each
made file hashed once).

    .venv/bin/python benchmarks/file_checks.py [--records N] [--files F] [--bytes S]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from wan_lora_dagster.pipeline.caches import LatentCacheRecord, LatentSection
from wan_lora_dagster.pipeline.made_files import damage
from wan_lora_dagster.pipeline.records import RecordStore


def build(root: Path, records: int, files: int, size: int) -> tuple[RecordStore, float]:
    """The files, then their records; returns the store and the seconds writing records took."""
    store = RecordStore(root / "out" / "records")
    payload = os.urandom(size)
    named = {}
    for index in range(records):
        named[f"clip{index:05d}"] = []
        for part in range(files):
            path = root / "out" / "cache" / f"clip{index:05d}_{part:02d}_wan.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
            named[f"clip{index:05d}"].append(str(path.relative_to(root)))
    started = time.perf_counter()
    for key, names in named.items():
        sections = {"video": LatentSection("x", names)}
        store.write(
            "latent_cache",
            key,
            LatentCacheRecord(fingerprint="x", data_version="x", sections=sections),
        )
    return store, time.perf_counter() - started


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--bytes", type=int, default=64 << 10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store, writing = build(root, args.records, args.files, args.bytes)
        keys = [f"clip{index:05d}" for index in range(args.records)]

        def read_only():
            for key in keys:
                store.read("latent_cache", key)

        def read_and_check():
            for key in keys:
                assert not damage(root, store.read("latent_cache", key))

        reading = timed(read_only)
        checking = timed(read_and_check)
        for path in (root / "out" / "cache").iterdir():
            os.utime(path)
        rehashing = timed(read_and_check)
    print(f"{args.records} records x {args.files} files x {args.bytes} bytes")
    print(f"{'read records only':34} {reading:8.3f} s  1.00x")
    print(f"{'read + check (stat each file)':34} {checking:8.3f} s  {checking / reading:5.2f}x")
    print(f"{'read + check, all mtimes moved':34} {rehashing:8.3f} s  {rehashing / reading:5.2f}x")
    print(f"{'write records (hash each file)':34} {writing:8.3f} s")


if __name__ == "__main__":
    main()
