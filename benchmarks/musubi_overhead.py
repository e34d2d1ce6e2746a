"""What the musubi engine adds to a musubi-tuner training run (GPU): wall time of
`MusubiEngine.train` vs. the SAME `accelerate launch wan_train_network.py` command run by hand.

Both sides train t2v-1.3B (random weights of the real shapes, tests/engines/musubi/gpu_fixtures.py)
for 2 epochs of 4 clips at 384x208x45, saving a LoRA and its state each epoch. The by-hand command
is the engine's own (`engine.plan`), run with subprocess into a fresh output folder, its output to
a file; the engine's side also streams and parses that output and lands each checkpoint (header
fields added, file moved). The sides alternate, each loading the same cached DiT.

Needs CUDA and MUSUBI_TUNER_DIR (a musubi-tuner checkout); weights are cached under
WAN_LORA_TEST_WEIGHTS as for the GPU test. Writes $OUT/musubi_overhead.json where $OUT is set.

    MUSUBI_TUNER_DIR=... python benchmarks/musubi_overhead.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engines" / "musubi"))

from gpu_fixtures import (
    ClipSpec,
    make_project,
    manifest_of,
    musubi_checkout,
    musubi_settings,
    random_weights,
    skip_reason,
    train_request,
    weights_dir,
)

from wan_lora_dagster.engines.musubi import MusubiEngine

GOAL_RATIO = 1.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side")
    repeats = parser.parse_args().repeats
    reason = skip_reason()
    if reason:
        sys.exit(f"musubi_overhead: {reason}")
    with tempfile.TemporaryDirectory(prefix="wan-lora-bench-musubi-") as scratch:
        times = measure(Path(scratch), repeats)
    report(times)


def measure(scratch: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds of each run, per side, taking turns at going first."""
    musubi = musubi_checkout()
    settings = musubi_settings(musubi, random_weights(weights_dir(), musubi))
    project = make_project(scratch / "project", ClipSpec())
    log = open(scratch / "musubi_output.log", "w", encoding="utf-8")  # noqa: SIM115
    engine = MusubiEngine(
        settings, project.root / "out" / "musubi", on_output=lambda line: log.write(line + "\n")
    )
    manifest = manifest_of(project, engine.encode_latents(project.latent_jobs, lambda _: None))

    def through_engine(repeat: int) -> float:
        request = train_request(project, manifest, settings, scratch / f"engine-{repeat}")
        started = time.perf_counter()
        landed = engine.train(request, lambda _: None, lambda _: None)
        seconds = time.perf_counter() - started
        assert len(landed) == settings.max_train_epochs, landed
        return seconds

    def by_hand(repeat: int) -> float:
        request = train_request(project, manifest, settings, scratch / f"hand-{repeat}")
        command = with_output_dir(engine.plan(request)[-1], scratch / f"hand-{repeat}")
        with open(scratch / f"hand-{repeat}.log", "wb") as output:
            started = time.perf_counter()
            subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, cwd=engine.work_dir, check=True
            )
            return time.perf_counter() - started

    sides = {"engine": through_engine, "by hand": by_hand}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(repeats):
        for name in list(sides)[:: 1 if repeat % 2 == 0 else -1]:
            times[name].append(sides[name](repeat))
            print(f"  {name} #{repeat + 1}: {times[name][-1]:.1f} s", flush=True)
    log.close()
    return times


def with_output_dir(command: list[str], folder: Path) -> list[str]:
    """The command with its --output_dir replaced (the engine's segment folder is its own)."""
    index = command.index("--output_dir") + 1
    return [*command[:index], str(folder), *command[index + 1 :]]


def report(times: dict[str, list[float]]) -> None:
    ours, hand = statistics.median(times["engine"]), statistics.median(times["by hand"])
    print("\nt2v-1.3B, 2 epochs x 4 steps  each run (s)    median (s)")
    for name, side, middle in (
        ("MusubiEngine.train", "engine", ours),
        ("same command by hand", "by hand", hand),
    ):
        runs = " ".join(f"{seconds:6.1f}" for seconds in times[side])
        print(f"  {name:<22} {runs}   {middle:6.1f}")
    ratio = ours / hand
    print(f"ratio ours / by hand: {ratio:.3f}x (goal {GOAL_RATIO}x)")
    if os.environ.get("OUT"):
        summary = {"seconds": times, "median_ratio": ratio, "goal": GOAL_RATIO}
        (Path(os.environ["OUT"]) / "musubi_overhead.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
