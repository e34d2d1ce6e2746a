"""What the graph adds to a musubi-tuner training run (GPU): wall time of `wan-lora run --select
lora_checkpoints` vs. the SAME `accelerate launch wan_train_network.py` command run by hand.

The project is the demo's (5 clips at 64x48, 9-frame windows) with `engine = "musubi"` and
t2v-1.3B random weights of the real shapes (wan_lora_dagster/testing/gpu_fixtures.py); its caches
are made once by the graph. Each graph run trains 2 epochs from scratch (its checkpoint records
are removed first) and includes everything a user waits for: the command's start (Python, Dagster,
the definitions), the run in the project's instance, streaming and parsing musubi's output,
landing and recording each checkpoint. The by-hand side runs the training command that
`wan-lora train --dry-run` prints, into a fresh folder. The sides alternate.

Needs CUDA and MUSUBI_TUNER_DIR (a musubi-tuner checkout); weights (14 GB) are cached under
WAN_LORA_TEST_WEIGHTS as for the GPU tests. Writes $OUT/musubi_overhead.json where $OUT is set.

    MUSUBI_TUNER_DIR=... python benchmarks/musubi_overhead.py [--repeats 2] [--num-repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wan_lora_dagster.testing.gpu_fixtures import real_shape_training, skip_reason
from wan_lora_dagster.testing.graph_scenario import musubi_demo_project

GOAL_RATIO = 1.02
EPOCHS = 2
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side")
    parser.add_argument("--num-repeats", type=int, default=2, help="the dataset's num_repeats")
    options = parser.parse_args()
    reason = skip_reason()
    if reason:
        sys.exit(f"musubi_overhead: {reason}")
    with tempfile.TemporaryDirectory(prefix="wan-lora-bench-musubi-") as scratch:
        project = prepare(Path(scratch), options.num_repeats)
        times = measure(project, Path(scratch), options.repeats)
    report(times)


def prepare(scratch: Path, num_repeats: int) -> Path:
    """The musubi demo project with every cache and the training set made by the graph."""
    training = real_shape_training(max_train_epochs=EPOCHS, save_every_n_epochs=1)
    project = musubi_demo_project(scratch / "demo", training, num_repeats=num_repeats)
    wan_lora("run", "--project", str(project), "--select", "+dataset_report")
    return project


def measure(project: Path, scratch: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds of each run, per side, taking turns at going first."""
    dry_run = wan_lora("train", "--project", str(project), "--dry-run")
    training_command = shlex.split(dry_run.strip().splitlines()[-1])

    def through_graph(_repeat: int) -> float:
        for derived in ("records/lora_checkpoints", "checkpoints", "musubi/train"):
            shutil.rmtree(project / "out" / derived, ignore_errors=True)
        started = time.perf_counter()
        wan_lora("run", "--project", str(project), "--select", "lora_checkpoints")
        seconds = time.perf_counter() - started
        recorded = list((project / "out" / "records" / "lora_checkpoints").glob("*.json"))
        assert len(recorded) == EPOCHS, recorded
        return seconds

    def by_hand(repeat: int) -> float:
        command = with_output_dir(training_command, scratch / f"hand-{repeat}")
        with open(scratch / f"hand-{repeat}.log", "wb") as output:
            started = time.perf_counter()
            subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, env=OFFLINE, check=True
            )
            return time.perf_counter() - started

    sides = {"graph": through_graph, "by hand": by_hand}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(repeats):
        for name in list(sides)[:: 1 if repeat % 2 == 0 else -1]:
            times[name].append(sides[name](repeat))
            print(f"  {name} #{repeat + 1}: {times[name][-1]:.1f} s", flush=True)
    return times


def wan_lora(*arguments: str) -> str:
    """Run the `wan-lora` command; its standard output."""
    command = [sys.executable, "-m", "wan_lora_dagster.cli", *arguments]
    done = subprocess.run(command, env=OFFLINE, capture_output=True, text=True)
    if done.returncode:
        sys.exit(
            f"wan-lora {' '.join(arguments)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def with_output_dir(command: list[str], folder: Path) -> list[str]:
    """The command with its --output_dir replaced, so no file of the graph's is touched."""
    index = command.index("--output_dir") + 1
    return [*command[:index], str(folder), *command[index + 1 :]]


def report(times: dict[str, list[float]]) -> None:
    ours, hand = statistics.median(times["graph"]), statistics.median(times["by hand"])
    print(f"\nt2v-1.3B, {EPOCHS} epochs, 64x48x9    each run (s)    median (s)")
    for name, side, middle in (
        ("wan-lora run (graph)", "graph", ours),
        ("same command by hand", "by hand", hand),
    ):
        runs = " ".join(f"{seconds:6.1f}" for seconds in times[side])
        print(f"  {name:<22} {runs}   {middle:6.1f}")
    ratio = ours / hand
    print(
        f"ratio ours / by hand: {ratio:.3f}x (goal {GOAL_RATIO}x); "
        f"the graph adds {ours - hand:.1f} s a run"
    )
    if os.environ.get("OUT"):
        summary = {"seconds": times, "median_ratio": ratio, "goal": GOAL_RATIO}
        (Path(os.environ["OUT"]) / "musubi_overhead.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
