"""Writers under out/ on a full disk (or past a file-size limit): a clear error naming the folder,
and no file left behind, half-written or temporary."""

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Run in a child with a file-size limit of 1 KiB: writing past it gives EFBIG, as a full disk
# gives ENOSPC (Python ignores SIGXFSZ, so the write fails instead of killing the process).
WRITE_BIG = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from wan_lora_dagster.errors import UserError
    from wan_lora_dagster.formats.musubi_cache import write_safetensors
    from wan_lora_dagster.pipeline.records import write_json_atomic
    folder = Path(sys.argv[1])
    writers = {
        "safetensors": lambda: write_safetensors(
            folder / "big_wan.safetensors", {"x": torch.zeros(4096)}, {}
        ),
        "record": lambda: write_json_atomic(folder / "big.json", {"x": "y" * 4096}),
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


@pytest.mark.parametrize("writer", ["safetensors", "record"])
def test_a_write_past_the_file_size_limit_names_the_folder_and_leaves_nothing(tmp_path, writer):
    folder = tmp_path / "out" / "cache"
    folder.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-c", WRITE_BIG, str(folder), writer],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 3, result.stderr
    assert f"no space left on the disk of {folder}" in result.stdout
    assert list(folder.iterdir()) == [], "a temporary or half-written file was left"
