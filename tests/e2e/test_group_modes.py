"""The demo run as a team member on shared storage runs it (umask 002, see tests/conftest.py): every
file and folder under out/ can be read and written by the group, as the umask says."""

import stat


def test_the_demo_under_umask_002_leaves_everything_group_writable(built_demo, team_umask):
    made = [path for path in (built_demo / "out").rglob("*") if not path.is_symlink()]
    assert len(made) > 50, "records, clips, captions, caches, checkpoints, models, videos"

    wrong = {
        str(path.relative_to(built_demo)): oct(mode)
        for path in made
        if (mode := stat.S_IMODE(path.stat().st_mode))
        != (0o777 if path.is_dir() else 0o666) & ~team_umask
    }
    assert wrong == {}
