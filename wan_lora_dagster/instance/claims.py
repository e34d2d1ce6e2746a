"""One maker per partition: claims kept in the project's Dagster instance.

Two runs on one project (two `wan-lora run` commands, or a command and a run launched from the
UI, on one machine or several sharing a PostgreSQL instance) never make the same partition at
the same time. Before making partitions, a maker claims them; partitions another live maker
holds are waited for, and found fresh afterwards (made by the other run) or claimed and made.

All claims live in one entry of the instance's key-value table, read and rewritten only under
the instance-wide claims mutex, so every claimer sees every other's claims:
- SQLite storage (one machine by nature): an flock beside the database; the kernel releases it
  when its holder dies.
- PostgreSQL storage (shared by machines): a session advisory lock (`pg_advisory_lock`) on
  the instance's database; the server releases it when its holder's connection drops.
Dagster's concurrency-slot claim is not atomic on either (its SELECT ... FOR UPDATE runs in
autocommit on PostgreSQL and outside the transaction on SQLite), so it is not the mutex here.

A claim is void once its run has finished, or, on the same machine, once its process is gone (a
SIGKILLed `wan-lora run`): then its run is marked failed and its pool slots are freed, so that
neither our claims nor the `gpu` pool wait for it. A process killed on another machine is
released when its run is marked finished there (run monitoring, or terminating it in the UI).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy

from wan_lora_dagster.dagster_internals import SqliteRunStorage
from wan_lora_dagster.errors import UserError
from wan_lora_dagster.instance.team import team_settings
from wan_lora_dagster.pipeline.records import UNPARTITIONED

CLAIMS_KEY = "wan_lora/claims"
ADVISORY_LOCK_ID = 0x57414E4C  # "WANL": the claims mutex among PostgreSQL's advisory locks
PROCESS_TAG = "wan_lora/process"  # host:pid:start of the process that runs a `wan-lora run` run
CLAIMANT_TAG = "wan_lora/claimant"  # the claim a `wan-lora run` holds for the run it launched
KILLED_TAG = "wan_lora/killed"  # its process was gone before it ended: it failed nothing
POLL_SECONDS = 0.5
UNFINISHED = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


def _start_ticks(pid: int) -> str:
    """When the process started (clock ticks after boot): a pid reused later differs in it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat[stat.rindex(")") + 2 :].split()[19]


def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def process_gone(identity: str) -> bool:
    """Whether a process named by this_process() has ended; unknowable (False) on another host."""
    host, pid, started = identity.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return started != "?" and _start_ticks(int(pid)) != started


@dataclass(frozen=True)
class Holder:
    """Who holds a partition: a claim's owner, its process and run."""

    owner: str
    process: str
    run_id: str | None

    def describe(self) -> str:
        host, pid, _ = self.process.rsplit(":", 2)
        run = f"run {self.run_id[:8]}, " if self.run_id else ""
        return f"{run}process {pid} on {host}"


class Claims:
    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        if isinstance(self.instance.run_storage, SqliteRunStorage):
            lock_path = Path(self.instance.root_directory) / ".claims.lock"
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield
            return
        postgres_url = getattr(self.instance.run_storage, "postgres_url", None)
        if postgres_url is None:
            raise UserError(
                "wan-lora keeps its partition claims in a SQLite or PostgreSQL Dagster instance; "
                f"this one's run storage is {type(self.instance.run_storage).__name__}"
            )
        yield from _advisory_lock(postgres_url)

    def _read(self) -> dict[str, dict]:
        raw = self.instance.run_storage.get_cursor_values({CLAIMS_KEY}).get(CLAIMS_KEY)
        return json.loads(raw) if raw else {}

    def _write(self, claims: dict[str, dict]) -> None:
        self.instance.run_storage.set_cursor_values({CLAIMS_KEY: json.dumps(claims)})

    def _live(self) -> dict[str, dict]:
        """The claims still held; void ones are dropped (and their dead runs failed)."""
        claims = self._read()
        live = {}
        for owner, claim in claims.items():
            run = self.instance.get_run_by_id(claim["run_id"]) if claim.get("run_id") else None
            finished = run is not None and run.status not in UNFINISHED
            if finished or process_gone(claim["process"]):
                continue
            live[owner] = claim
        if len(live) != len(claims):
            self._write(live)
            release_dead_runs(self.instance)
        return live

    def try_claim(
        self, owner: str, asset: str, keys: list[str], run_id: str | None = None
    ) -> dict[str, Holder]:
        """Claim all of `keys`, or none: returns the keys others hold (empty when claimed)."""
        with self._mutex():
            live = self._live()
            wanted = set(keys)
            taken = {
                key: Holder(other, claim["process"], claim.get("run_id"))
                for other, claim in live.items()
                if other != owner and claim["asset"] == asset
                for key in wanted.intersection(claim["keys"])
            }
            if not taken:
                live[owner] = {
                    "asset": asset,
                    "keys": sorted(wanted),
                    "process": this_process(),
                    "run_id": run_id,
                }
                self._write(live)
            return taken

    def claim(
        self,
        owner: str,
        asset: str,
        keys: list[str],
        run_id: str | None = None,
        on_wait: Callable[[dict[str, Holder]], None] | None = None,
    ) -> bool:
        """Wait until no one else holds any of `keys`, then claim them; whether it waited."""
        waited = False
        while taken := self.try_claim(owner, asset, keys, run_id):
            if not waited and on_wait:
                on_wait(taken)
            waited = True
            time.sleep(POLL_SECONDS)
        return waited

    def holds(self, owner: str, asset: str, keys: list[str]) -> bool:
        with self._mutex():
            claim = self._live().get(owner)
        return bool(claim) and claim["asset"] == asset and set(keys) <= set(claim["keys"])

    def release(self, owner: str) -> None:
        with self._mutex():
            claims = self._read()
            if claims.pop(owner, None) is not None:
                self._write(claims)


def _advisory_lock(postgres_url: str) -> Iterator[None]:
    """The claims mutex on PostgreSQL: held by this connection, released if it drops."""
    engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({ADVISORY_LOCK_ID})"))
            try:
                yield
            finally:
                unlock = f"SELECT pg_advisory_unlock({ADVISORY_LOCK_ID})"
                connection.execute(sqlalchemy.text(unlock))
    finally:
        engine.dispose()


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the unfinished runs whose `wan-lora run` process on this machine is gone (SIGKILL),
    and free their pool slots; returns their run ids."""
    released = []
    for run in instance.get_runs(dg.RunsFilter(statuses=list(UNFINISHED))):
        process = run.tags.get(PROCESS_TAG)
        if process and process_gone(process):
            instance.add_run_tags(run.run_id, {KILLED_TAG: "true"})  # ended, not in error
            instance.report_run_failed(run, f"its process ({process}) is gone: killed")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released


def partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    partitioned = context.assets_def.partitions_def is not None
    return list(context.partition_keys) if partitioned else [UNPARTITIONED]


def one_maker(compute: Callable) -> Callable:
    """A step that claims its partitions before making them (runs launched from the UI).

    A run launched by `wan-lora run` carries the claim the command took before launching it.
    A step without a pool waits for other makers, then finds what they made fresh. A step on a
    pool (the GPU stages) holds its slot while it waits, and a step on a team deployment holds
    its Celery worker: the other maker may need that slot or worker to finish (with one worker,
    it would wait for ever), so such a step fails at once instead, naming who holds the
    partitions.
    """

    @functools.wraps(compute)
    def step(context: dg.AssetExecutionContext, *args, **kwargs):
        asset, keys = context.asset_key.to_user_string(), partition_keys(context)
        claims = Claims(context.instance)
        claimant = context.run.tags.get(CLAIMANT_TAG)
        owner = None
        if not (claimant and claims.holds(claimant, asset, keys)):
            owner = f"{this_process()}:{context.run_id}:{asset}"
            if context.op_def.pool or team_settings(context.instance) is not None:
                if taken := claims.try_claim(owner, asset, keys, context.run_id):
                    raise dg.Failure(_held_message(asset, taken), allow_retries=False)
            else:
                claims.claim(owner, asset, keys, context.run_id, _log_wait(context, asset))
        try:
            result = compute(context, *args, **kwargs)
            if inspect.isgenerator(result):
                yield from result
            else:
                yield result
        finally:
            if owner:
                claims.release(owner)

    return step


def _held_message(asset: str, taken: dict[str, Holder]) -> str:
    holders = sorted({holder.describe() for holder in taken.values()})
    return (
        f"{len(taken)} partition(s) of {asset} are being made by another run ({'; '.join(holders)})"
        ": not made twice. Materialize them again once it has finished."
    )


def _log_wait(context: dg.AssetExecutionContext, asset: str) -> Callable:
    def log(taken: dict[str, Holder]) -> None:
        holders = sorted({holder.describe() for holder in taken.values()})
        context.log.info(f"waiting for {len(taken)} {asset} partition(s): {'; '.join(holders)}")

    return log
