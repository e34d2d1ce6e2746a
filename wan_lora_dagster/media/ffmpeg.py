"""Finding ffmpeg and running it: every clip, preview and video we write comes out of it."""

from __future__ import annotations

import errno
import shutil
import signal
import subprocess

from wan_lora_dagster.errors import MediaError

STDERR_TAIL_LINES = 12
A_FILMS_ADVICE = "check that the film plays there, or move the range away from a damaged part. "


def find_ffmpeg(configured: str | None = None) -> str:
    """The ffmpeg to run: `configured` (a path or a command), else `ffmpeg` on PATH, else the
    binary bundled with imageio-ffmpeg. Raises MediaError saying how to get one."""
    if configured:
        found = shutil.which(configured)
        if not found:
            raise MediaError(
                f"ffmpeg binary '{configured}' is not an executable file or a command on PATH; "
                "fix the setting, or leave it empty to use the ffmpeg on PATH"
            )
        return found
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise MediaError(
            "no ffmpeg found: install ffmpeg (`apt install ffmpeg`) or `pip install imageio-ffmpeg`"
        ) from error


def run_ffmpeg(
    command: list[str], doing: str, advice: str = A_FILMS_ADVICE, frames: bytes | None = None
) -> None:
    """Run ffmpeg (`frames`: its standard input). A failure is a MediaError that begins with
    `doing`, gives `advice` and quotes ffmpeg; ffmpeg killed past the file-size limit is the
    OSError (EFBIG) of a write that failed there, which the disk-full handling names."""
    try:
        result = subprocess.run(command, input=frames, capture_output=True)
    except OSError as error:
        raise MediaError(f"{doing}: cannot run ffmpeg '{command[0]}': {error}") from error
    if result.returncode == -signal.SIGXFSZ:
        raise OSError(errno.EFBIG, f"{doing}: ffmpeg stopped at the file-size limit")
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip().splitlines()[-STDERR_TAIL_LINES:]
        raise MediaError(
            f"{doing}: ffmpeg failed (exit status {result.returncode}); {advice}ffmpeg said:\n"
            + "\n".join(said)
        )
