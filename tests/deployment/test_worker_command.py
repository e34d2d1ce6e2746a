"""`wan-lora worker` refuses, with a clear message, what cannot become a worker."""

from wan_lora_dagster.cli import main
from wan_lora_dagster.scaffold import init_project


def test_a_project_on_one_machine_has_no_workers(tmp_path, capsys, monkeypatch):
    project = init_project(tmp_path / "solo")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # open_instance points it at the project

    assert main(["worker", "--project", str(project), "--queue", "cpu"]) == 2

    error = capsys.readouterr().err
    assert f"{project.resolve() / '.dagster' / 'dagster.yaml'}: not a team deployment" in error


def test_an_unknown_queue_is_named(tmp_path, capsys, monkeypatch):
    project = init_project(tmp_path / "solo")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))

    assert main(["worker", "--project", str(project), "--queue", "cpu,tpu"]) == 2

    assert "--queue takes cpu, gpu or both (cpu,gpu), not 'cpu,tpu'" in capsys.readouterr().err
