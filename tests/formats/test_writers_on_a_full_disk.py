"""Writers under out/ on a full disk (or past a file-size limit): a clear error naming the folder,
and no file left behind, half-written or temporary."""

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wan_lora_dagster.media.synthetic import make_synthetic_film

# Run in a child with a file-size limit of 1 KiB: writing past it gives EFBIG, as a full disk
# gives ENOSPC (Python ignores SIGXFSZ, so the write fails instead of killing the process).
WRITE_BIG = textwrap.dedent(
    """
    import sys, numpy, torch
    from pathlib import Path
    from wan_lora_dagster.disk_full import building
    from wan_lora_dagster.errors import UserError
    from wan_lora_dagster.formats.musubi_cache import write_safetensors
    from wan_lora_dagster.media.cut import cut_clip
    from wan_lora_dagster.media.video_writer import write_video
    from wan_lora_dagster.pipeline.plots import loss_curve
    from wan_lora_dagster.pipeline.records import write_json_atomic
    folder = Path(sys.argv[1])

    def build_folder():
        with building(folder / "model", lambda built: False) as partial:
            (partial / "weights.bin").write_bytes(bytes(4096))

    writers = {
        "safetensors": lambda: write_safetensors(
            folder / "big_wan.safetensors", {"x": torch.zeros(4096)}, {}
        ),
        "record": lambda: write_json_atomic(folder / "big.json", {"x": "y" * 4096}),
        "video": lambda: write_video(
            numpy.random.default_rng(0).integers(0, 255, (9, 48, 64, 3), dtype=numpy.uint8),
            folder / "big.mp4",
        ),
        "picture": lambda: loss_curve([(1, 2.0), (2, 1.0)], folder / "big.png"),
        "model folder": build_folder,
        "clip": lambda: cut_clip(Path(sys.argv[3]), 0.0, 1.0, folder / "big_clip.mp4"),
    }
    try:
        writers[sys.argv[2]]()
    except UserError as error:
        print(error)
        sys.exit(3)
    """
)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


@pytest.mark.parametrize(
    "writer", ["safetensors", "record", "video", "picture", "model folder", "clip"]
)
def test_a_write_past_the_file_size_limit_names_the_folder_and_leaves_nothing(tmp_path, writer):
    folder = tmp_path / "out" / "cache"
    folder.mkdir(parents=True)
    film = make_synthetic_film(tmp_path / "film.mp4", duration=2, size=(64, 48))
    result = subprocess.run(
        [sys.executable, "-c", WRITE_BIG, str(folder), writer, str(film)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 3, result.stderr
    assert f"no space left on the disk of {folder}" in result.stdout
    assert list(folder.iterdir()) == [], "a temporary or half-written file was left"
