"""Fixtures every test folder shares: the test media, and the demo project made once per worker
(pytest-xdist worker) at each of its stages, for tests to read or to copy before changing it."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from wan_lora_dagster.cli import main
from wan_lora_dagster.scaffold import create_demo_project

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
# The demo is made as a team member on shared storage makes it, under umask 002
# (tests/e2e/test_group_modes.py checks that every file it made is group-writable).
TEAM_UMASK = 0o002


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real test films in ../shared/media; skips where a clone has no ../shared beside it."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"test media not found at {SHARED_MEDIA} (it lives in ../shared/media)")
    return SHARED_MEDIA


def _copy(source: Path, target: Path) -> Path:
    """A made project copied whole (its .dagster instance too): modes kept, links kept."""
    shutil.copytree(source, target, symlinks=True)
    return target


def _run_demo(source: Path | None, target: Path, *selection: str) -> Path:
    """The demo (a copy of `source`, the stage before, where given) run up to `selection`."""
    project = _copy(source, target) if source else create_demo_project(target)
    previous = os.umask(TEAM_UMASK)
    try:
        assert main(["run", "--project", str(project), *selection]) == 0
    finally:
        os.umask(previous)
    return project


@pytest.fixture(scope="session")
def team_umask() -> int:
    """The umask the shared demo projects are made under."""
    return TEAM_UMASK


@pytest.fixture(scope="session")
def captioned_demo(tmp_path_factory) -> Path:
    """The demo run up to its captions (clips cut, captions written). Read it, or copy it
    (`copy_project`) before changing it: every test of the worker shares it."""
    return _run_demo(None, tmp_path_factory.mktemp("demo") / "captioned", "--select", "+captions")


@pytest.fixture(scope="session")
def cached_demo(captioned_demo, tmp_path_factory) -> Path:
    """The demo run up to its training set (text and latent caches made), not trained: shared."""
    target = tmp_path_factory.mktemp("demo") / "cached"
    return _run_demo(captioned_demo, target, "--select", "+training_set")


@pytest.fixture(scope="session")
def built_demo(cached_demo, tmp_path_factory) -> Path:
    """The demo run from films to best_lora (two checkpoints, evaluated): shared."""
    return _run_demo(cached_demo, tmp_path_factory.mktemp("demo") / "built")


@pytest.fixture(scope="session")
def evaluated_demo(built_demo) -> Path:
    """The made demo through eval and best_lora (the studio tests' name for `built_demo`)."""
    return built_demo


@pytest.fixture
def copy_project(tmp_path) -> Callable[[Path, str], Path]:
    """copy(project, name="demo") -> a copy of a made project under this test's tmp_path."""

    def copy(project: Path, name: str = "demo") -> Path:
        return _copy(project, tmp_path / name)

    return copy


@pytest.fixture
def demo_copy(built_demo, copy_project) -> Path:
    """A copy of the made demo, this test's to change."""
    return copy_project(built_demo)


NOT_COMPARED = ("out/logs/", "out/.state/", "out/checkpoints/state/")


def _made_contents(project: Path) -> dict[str, object]:
    """The files a run made, as a user compares two projects: bytes; a safetensors file's header
    fields and tensors (safetensors writes the fields in no fixed order, so the bytes and their
    hash may differ); records without file times.

    Left out: training logs (TensorBoard names its file after the time and process) and
    out/.state (the hashes of films already read, by absolute path) and the training's resume
    bookkeeping under out/checkpoints/state (named for its run, whose identity holds the path).
    """
    files = {}
    for folder in (project / "out", project / "captions"):
        for path in sorted(folder.rglob("*")):
            name = str(path.relative_to(project))
            if path.is_dir() or name.startswith(NOT_COMPARED):
                continue
            files[name] = path.read_bytes()
            if name.endswith(".safetensors") and _whole(path):
                files[name] = _tensors(path)
            elif name.startswith("out/records/"):
                files[name] = _without_times(json.loads(files[name]))
    return files


def _whole(path: Path) -> bool:
    """Whether a safetensors file reads (a damaged one compares as its bytes)."""
    from wan_lora_dagster.formats.cache_files import safetensors_complete

    return safetensors_complete(path)


def _tensors(path: Path) -> tuple[dict, dict[str, bytes]]:
    import torch  # here: the fast tier's tests never load it
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(path)
    return metadata, {
        key: tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        for key, tensor in tensors.items()
    }


def _without_times(record: dict) -> dict:
    for name, made in record.get("made_files", {}).items():
        made.pop("mtime_ns")
        if name.endswith(".safetensors"):
            made.pop("hash")
    return record


@pytest.fixture(scope="session")
def made_contents() -> Callable[[Path], dict[str, object]]:
    """made_contents(project): what a run made, file by file, to compare two projects."""
    return _made_contents


# The files whose tests take longest on the 2-core machine (`--durations`), handed out first:
# `make test` gives whole files to its two workers in collection order (--dist loadfile
# --no-loadscope-reorder; xdist's own order puts files of one long test, like the fault matrix,
# last), and a long file handed out last keeps one worker busy while the other has nothing
# left. A stale list costs minutes, never a result.
START_FIRST = (
    "tests/e2e/test_fault_matrix.py",
    "tests/test_readme.py",
    "tests/deployment/test_team_deployment.py",
    "tests/engines/test_diffusers_graph.py",
    "tests/e2e/test_invalidation.py",
    "tests/deployment/test_worker_stop.py",
    "tests/deployment/test_team_runs.py",
    "tests/studio/test_edits_reach_the_graph_in_chromium.py",
    "tests/engines/test_diffusers_multi_gpu.py",
    "tests/browser/test_dagster_ui.py",
    "tests/dagster_layer/test_studio_links.py",
    "tests/e2e/test_disk_full.py",
    "tests/e2e/test_video_captioners.py",
    "tests/e2e/test_wan22_graph.py",
    "tests/engines/musubi/test_musubi_orphans.py",
    "tests/e2e/test_training_modes_graph.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """START_FIRST's files first, in its order; the others after, as collected."""
    rank = {name: index for index, name in enumerate(START_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


REPORT_PROPERTY = "report_at_the_end"
REPORTS: list[tuple[str, str]] = []  # in the process that writes the terminal summary


@pytest.fixture
def report_at_the_end(request) -> Callable[[str, str], None]:
    """report(title, text): shown in the terminal summary at the end of the session, where `-q`
    shows it too (tests/e2e/test_fault_matrix.py's stage x fault matrix). It travels as a user
    property of the test's report, which pytest-xdist hands its controller: a worker's own
    terminal summary is never shown."""

    def report(title: str, text: str) -> None:
        request.node.user_properties.append((REPORT_PROPERTY, (title, text)))

    return report


def pytest_runtest_logreport(report) -> None:
    if report.when == "teardown":  # the test's last report, which carries all its properties
        REPORTS.extend(value for name, value in report.user_properties if name == REPORT_PROPERTY)


def pytest_terminal_summary(terminalreporter) -> None:
    for title, text in REPORTS:
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)
