"""A batch stays with its worker while that worker lives, and no longer: imported by every
`wan-lora worker` (celery's `-I`), never by a submitting process.

The Redis broker hands a batch out again when its entry in kombu's `unacked_index` is older than
the visibility timeout; kombu writes that entry once, when the batch is delivered. Alone, the
timeout must then exceed the longest batch (a training run: hours), and a batch whose worker died
waits that long. Here a thread of the worker rewrites the entries of the batches it holds every
`visibility_timeout / RENEWALS_PER_TIMEOUT` seconds: the entry is the holder's heartbeat, and the
timeout counts from its last beat, not from the delivery. So the timeout is short (minutes), a
long batch is never handed out twice while its worker beats, and a batch whose worker died
(SIGKILL, out of memory, a machine lost) is restored to its queue by the next sweep of any live
worker once the timeout has passed.

Chosen over the alternatives: Celery's own liveness (broker heartbeats) exists for AMQP only, and
`task_reject_on_worker_lost` covers a pool child dying, not the worker itself; Dagster's run
monitoring watches the process of a run, here the waiting `wan-lora run`, not the Celery task,
and needs the daemon. Renewing kombu's own entry keeps one mechanism (kombu's sweep) doing the
hand-over. The timestamps come from the machines' clocks, as kombu's own do: their skew must stay
well under the timeout (NTP keeps it to milliseconds).
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from celery.signals import task_received, worker_ready
from kombu.message import Message

RENEWALS_PER_TIMEOUT = 6  # beats a holder may miss (a loaded machine) before losing its batch

_log = logging.getLogger(__name__)
_held: dict[str, Message] = {}  # delivery tag -> the message of a batch this worker holds
_held_lock = threading.Lock()


@task_received.connect
def _hold(request, **_) -> None:
    with _held_lock:
        _held[request.message.delivery_tag] = request.message


@worker_ready.connect
def _start_heartbeat(sender, **_) -> None:
    app = sender.app
    timeout = app.conf.broker_transport_options["visibility_timeout"]
    period = timeout / RENEWALS_PER_TIMEOUT
    threading.Thread(target=_beat, args=(app, period), name="held-batches", daemon=True).start()


def _beat(app: Celery, period: float) -> None:
    """Forever: the entries of the batches held now get the time of this beat."""
    with app.connection_for_write() as connection:  # its own: kombu's are not thread-safe
        channel = connection.default_channel
        while True:
            time.sleep(period)
            tags = _still_held()
            if not tags:
                continue
            try:
                # XX: only entries still there; one acknowledged meanwhile is not brought back
                channel.client.zadd(
                    channel.unacked_index_key, dict.fromkeys(tags, time.time()), xx=True
                )
            except (*connection.connection_errors, *connection.channel_errors) as error:
                # the next beat tries again: a thread that ended here would lose every batch
                _log.warning("could not renew the batches this worker holds: %s", error)


def _still_held() -> list[str]:
    """Tags of batches not yet acknowledged (done) or given back; forgets the others."""
    with _held_lock:
        for tag in [tag for tag, message in _held.items() if message.acknowledged]:
            del _held[tag]
        return list(_held)
