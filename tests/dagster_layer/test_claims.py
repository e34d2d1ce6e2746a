"""Partition claims between processes, in a real SQLite instance and a real PostgreSQL one:
one holder at a time, and a SIGKILLed holder's claims released."""

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from wan_lora_dagster.instance.claims import PROCESS_TAG, Claims, one_maker, release_dead_runs
from wan_lora_dagster.pipeline.records import UNPARTITIONED
from wan_lora_dagster.run_outcomes import failure_messages
from wan_lora_dagster.testing.processes import default_signals
from wan_lora_dagster.testing.servers import postgres_bin, postgres_server

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).resolve().parents[2]
CONTENDERS = 3
ROUNDS = 4

# Each contender claims the same partitions ROUNDS times and, while holding them, increments a
# counter by read, pause, write: an update is lost whenever two hold the claim at once.
CONTENDER = textwrap.dedent(
    f"""
    import sys, time
    from pathlib import Path
    import dagster as dg
    from wan_lora_dagster.instance.claims import Claims
    claims = Claims(dg.DagsterInstance.from_config(sys.argv[1]))
    counter, name = Path(sys.argv[2]), sys.argv[3]
    for _ in range({ROUNDS}):
        claims.claim(name, "clips", ["a", "b"])
        value = int(counter.read_text())
        time.sleep(0.05)
        counter.write_text(str(value + 1))
        claims.release(name)
    """
)
# Claims partition `a` of `asset`, says so, and holds it until killed, or for `seconds`, after
# which it writes the file `released` and releases.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dagster as dg
    from wan_lora_dagster.instance.claims import Claims
    home, asset, key, seconds = sys.argv[1:5]
    claims = Claims(dg.DagsterInstance.from_config(home))
    claims.claim("holder", asset, [key])
    print("held", flush=True)
    time.sleep(float(seconds))
    Path(home, "released").write_text("yes")
    claims.release("holder")
    """
)
IDENTITY = "from wan_lora_dagster.instance.claims import this_process; print(this_process())"


def _python(script: str, *arguments, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, arguments)],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        preexec_fn=default_signals,
        **options,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def instance_home(request, tmp_path) -> Iterator[Path]:
    """A Dagster home whose dagster.yaml keeps everything in SQLite files or in PostgreSQL."""
    home = tmp_path / "dagster"
    home.mkdir()
    if request.param == "sqlite":
        yield _sqlite_home(tmp_path)
        return
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server() as url:
        (home / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {url}\n")
        dg.DagsterInstance.from_config(str(home))  # its tables, made once before the contenders
        yield home


def _sqlite_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    dg.DagsterInstance.from_config(str(home))  # its tables, made once before any contender
    return home


def test_only_one_process_holds_a_partition_at_a_time(instance_home, tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    contenders = [
        _python(CONTENDER, instance_home, counter, f"contender-{n}") for n in range(CONTENDERS)
    ]
    assert [process.wait(timeout=300) for process in contenders] == [0] * CONTENDERS
    assert int(counter.read_text()) == CONTENDERS * ROUNDS


def test_a_sigkilled_holder_s_claim_is_released(instance_home):
    holder = _python(HOLDER, instance_home, "clips", "a", 600, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    claims = Claims(dg.DagsterInstance.from_config(str(instance_home)))
    taken = claims.try_claim("me", "clips", ["a", "c"])
    assert list(taken) == ["a"]
    assert f"process {holder.pid}" in taken["a"].describe()
    assert claims.try_claim("me", "texts", ["a"]) == {}, "another asset's partition a is free"
    claims.release("me")

    holder.kill()
    holder.wait()
    assert claims.try_claim("me", "clips", ["a", "c"]) == {}


def test_a_ui_step_waits_for_another_maker_and_a_gpu_step_refuses_to_wait(tmp_path):
    """Steps of runs launched from the UI (no claim from `wan-lora run`): a step without a pool
    waits for the other maker's claim; a step on the `gpu` pool, which holds its slot while it
    runs, fails at once naming the other maker instead of waiting (the other may need the slot)."""
    home = _sqlite_home(tmp_path)
    instance = dg.DagsterInstance.from_config(str(home))
    ran = {}

    @dg.asset
    @one_maker
    def notes(context):
        ran["notes after the release"] = (home / "released").exists()
        return dg.MaterializeResult()

    @dg.asset(pool="gpu")
    @one_maker
    def latents(context):
        ran["latents"] = True
        return dg.MaterializeResult()

    holder = _python(HOLDER, home, "notes", UNPARTITIONED, 2, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert dg.materialize([notes], instance=instance).success
    assert ran == {"notes after the release": True}
    assert holder.wait() == 0

    holder = _python(HOLDER, home, "latents", UNPARTITIONED, 600, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    result = dg.materialize([latents], instance=instance, raise_on_error=False)
    holder.kill()
    holder.wait()
    assert "latents" not in ran
    message = failure_messages(result, [UNPARTITIONED])[UNPARTITIONED]
    assert f"being made by another run (process {holder.pid}" in message


def test_a_step_on_a_team_worker_refuses_to_wait(tmp_path):
    """On a team deployment a step holds a Celery worker while it runs. The other maker may need
    that worker to finish (with one worker it would wait for ever), so a step finding its
    partitions claimed fails at once, naming who holds them."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    home = tmp_path / "dagster"
    home.mkdir()
    ran = {}

    @dg.asset
    @one_maker
    def notes(context):
        ran["notes"] = True
        return dg.MaterializeResult()

    with postgres_server() as url:
        (home / "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {url}\n"
            "run_launcher:\n  module: wan_lora_dagster.deployment.team\n"
            "  class: TeamRunLauncher\n  config:\n    broker: redis://127.0.0.1:6379/0\n"
        )
        instance = dg.DagsterInstance.from_config(str(home))
        holder = _python(
            HOLDER, home, "notes", UNPARTITIONED, 600, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline().strip() == "held"
        result = dg.materialize([notes], instance=instance, raise_on_error=False)
        holder.kill()
        holder.wait()
    assert ran == {}
    message = failure_messages(result, [UNPARTITIONED])[UNPARTITIONED]
    assert f"being made by another run (process {holder.pid}" in message


def _event(run: dg.DagsterRun, event_type: dg.DagsterEventType) -> dg.DagsterEvent:
    return dg.DagsterEvent(event_type.value, job_name=run.job_name)


def test_a_killed_commands_run_is_failed_and_its_gpu_slot_freed(tmp_path):
    """What a SIGKILLed `wan-lora run` leaves: a run STARTED forever, holding the `gpu` slot
    that every later run's training waits for."""
    instance = dg.DagsterInstance.from_config(str(_sqlite_home(tmp_path)))
    gone = _python(IDENTITY, stdout=subprocess.PIPE, text=True)
    identity = gone.communicate()[0].strip()
    run = instance.add_run(
        dg.DagsterRun(job_name="train", run_id=str(uuid.uuid4()), tags={PROCESS_TAG: identity})
    )
    instance.handle_run_event(run.run_id, _event(run, dg.DagsterEventType.RUN_START))
    instance.event_log_storage.set_concurrency_slots("gpu", 1)
    assert instance.event_log_storage.claim_concurrency_slot("gpu", run.run_id, "train").is_claimed

    assert release_dead_runs(instance) == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
    assert release_dead_runs(instance) == []
