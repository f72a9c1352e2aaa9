"""Each qcluster's main process records that it is alive, for `/healthz` and `manage.py batches_doctor`.

django-q2 keeps its cluster statistics (`Stat`) in the Django cache, which is per process here (LocMemCache), so
neither the web server nor another machine could read them. A row per cluster, renewed every few seconds, can be.

Each row names the machine that wrote it (host name and boot id), so a node name that two machines share is seen:
a qcluster refuses to start under a node name whose heartbeat another machine keeps renewing (`node_name_holder`),
and /healthz and `batches_doctor` report it (selectors/health.py). Two machines under one name would each take the
other's live rows for a dead process's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from batches.cluster.nodes import machine, machine_tag
from batches.conf import settings
from batches.models import ClusterHeartbeat

logger = logging.getLogger(__name__)
INTERVAL = 10.0  # seconds between beats; "seen in the last minute" tolerates a few missed ones
FORGET_AFTER = timedelta(days=1)  # rows of clusters that died without saying goodbye are pruned after this
RECENT = timedelta(minutes=1)  # a row seen within this may belong to a live cluster

_stop = threading.Event()
_thread: threading.Thread | None = None


def node_name() -> str:
    """This machine's name: BATCHES_NODE_NAME when set, else its host name."""
    return getattr(settings, "BATCHES_NODE_NAME", "") or os.environ.get("BATCHES_NODE_NAME") or socket.gethostname()


def row_name(pid: int) -> str:
    """node:pid@machine tag: clusters in two containers may share a node name and a pid (1, say), not a machine."""
    return f"{node_name()}:{pid}@{machine_tag()}"


def beat(*, name: str, started_at: datetime, now: datetime | None = None) -> None:
    """Write (or renew) the row `name` (node:pid, and @machine tag when written by `start`)."""
    now = now or timezone.now()
    node, _, pid = name.partition("@")[0].rpartition(":")
    ClusterHeartbeat.objects.update_or_create(
        name=name,
        defaults={"node": node, "pid": int(pid), "machine": machine(), "started_at": started_at, "seen_at": now},
    )
    ClusterHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()


def others_under_this_name(now: datetime | None = None) -> list[dict[str, Any]]:
    """Recent heartbeats under this node name written by another machine (rows of older releases name none)."""
    since = (now or timezone.now()) - RECENT
    rows = ClusterHeartbeat.objects.filter(node=node_name(), seen_at__gte=since).exclude(machine__in=["", machine()])
    return [dict(row) for row in rows.order_by("name").values("name", "machine", "seen_at")]


def node_name_holder(*, watch: float = INTERVAL + 2, every: float = 0.5) -> dict[str, Any] | None:
    """Another machine's cluster that holds this node name: one whose heartbeat is renewed while this one watches.

    A recent row alone is not enough: a cluster killed on another machine (or before a reboot, or in a container
    that was replaced) leaves one that is no longer renewed. Watching costs a start-up up to `watch` seconds, and
    only when such a row exists.
    """
    seen = {(row["name"], row["seen_at"]) for row in others_under_this_name()}
    deadline = time.monotonic() + watch
    while seen and time.monotonic() < deadline:
        time.sleep(every)
        renewed = [row for row in others_under_this_name() if (row["name"], row["seen_at"]) not in seen]
        if renewed:
            return renewed[0]
    return None


def start() -> None:
    """Beat in a daemon thread of this (the cluster's main) process until stop() is called.

    Called after the cluster forked its sentinel: the main process forks nothing else, so no child inherits the
    thread's database connection.
    """
    global _thread
    name = row_name(os.getpid())
    _stop.clear()
    _thread = threading.Thread(target=_run, args=(name, timezone.now()), name="batches-heartbeat", daemon=True)
    _thread.start()


def stop(timeout: float = 5.0) -> None:
    """Stop beating and remove this cluster's row, so a stopped cluster is not counted as alive."""
    _stop.set()
    if _thread is not None:
        _thread.join(timeout)


def _run(name: str, started_at: datetime) -> None:
    while True:
        try:
            beat(name=name, started_at=started_at)
        except DatabaseError as exc:  # a database outage must not stop the cluster; the next beat retries
            logger.warning("heartbeat not written: %s", exc)
        finally:
            connection.close()
        if _stop.wait(INTERVAL):
            break
    _forget(name)


def _forget(name: str) -> None:
    try:
        ClusterHeartbeat.objects.filter(name=name).delete()
    except DatabaseError as exc:
        logger.warning("heartbeat not removed: %s", exc)
    finally:
        connection.close()
