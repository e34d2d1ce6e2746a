import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from wan_lora_dagster.cli import main
from wan_lora_dagster.project import open_project
from wan_lora_dagster.scaffold import create_demo_project
from wan_lora_dagster.studio.app import create_app
from wan_lora_dagster.studio.security import Access

STUDIO = "http://127.0.0.1"  # the address TestClient requests carry (base_url below)


@pytest.fixture(scope="session")
def captioned_demo(tmp_path_factory) -> Path:
    """The demo project run up to its captions (clips cut, captions written); tests copy it."""
    project = create_demo_project(tmp_path_factory.mktemp("studio") / "demo")
    assert main(["run", "--project", str(project), "--select", "+captions"]) == 0
    return project


@pytest.fixture
def demo(captioned_demo, tmp_path) -> Path:
    target = tmp_path / "demo"
    shutil.copytree(captioned_demo, target, symlinks=True)
    return target


@pytest.fixture
def client(demo) -> TestClient:
    """The studio on this machine, as the page calls it: writes carry the studio's Origin."""
    app = create_app(open_project(demo), Access.for_bind("127.0.0.1", None))
    return TestClient(app, base_url=STUDIO, headers={"origin": STUDIO})


@pytest.fixture(scope="session")
def evaluated_demo(tmp_path_factory) -> Path:
    """The demo project run through eval and best_lora (two checkpoints); tests copy it."""
    project = create_demo_project(tmp_path_factory.mktemp("studio") / "evaluated")
    assert main(["run", "--project", str(project)]) == 0
    return project
