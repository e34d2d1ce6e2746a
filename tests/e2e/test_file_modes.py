"""The demo run as a team member on shared storage runs it (umask 002): every file and folder
under out/ can be read and written by the group, as the umask says."""

import os
import stat
import subprocess

from tests.e2e.test_bad_films import WAN_LORA
from tests.processes import default_signals


def _as_team_member() -> None:
    default_signals()
    os.umask(0o002)


def test_the_demo_under_umask_002_leaves_everything_group_writable(tmp_path):
    project = tmp_path / "demo"
    demo = subprocess.run(
        [str(WAN_LORA), "demo", str(project)],
        capture_output=True,
        text=True,
        timeout=1800,
        preexec_fn=_as_team_member,
    )

    assert demo.returncode == 0, demo.stdout + demo.stderr
    modes = {
        path.relative_to(project): stat.S_IMODE(path.lstat().st_mode)
        for path in (project / "out").rglob("*")
        if not path.is_symlink()
    }
    assert len(modes) > 50, "records, clips, captions, caches, checkpoints, models, videos"
    wrong = {
        str(path): oct(mode)
        for path, mode in modes.items()
        if mode != (0o775 if (project / path).is_dir() else 0o664)
    }
    assert wrong == {}
