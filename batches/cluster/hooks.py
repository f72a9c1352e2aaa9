"""What a qcluster does besides running tasks: it tells its runners when it is stopping (a marker file named
after its sentinel), and writes its heartbeat while it runs (batches/cluster/heartbeat.py). Installed by apps.py."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.core.management.base import CommandError
from django.db import DatabaseError

from batches.cluster import heartbeat, nodes

logger = logging.getLogger(__name__)
MARKER_PREFIX = "batches-cluster-stopping-"


def stop_marker(sentinel_pid: int) -> Path:
    """A file that tells the runners of one cluster (children of its sentinel) that the cluster is stopping.

    Named after the sentinel's pid and start (boot id and start time), which belong to this run of the cluster
    only: a marker left by a cluster killed while stopping never stops a later one whose sentinel got that pid.
    """
    return Path(tempfile.gettempdir()) / f"{MARKER_PREFIX}{sentinel_pid}-{nodes.process_tag(sentinel_pid)}"


def clear_stale_stop_markers() -> None:
    """Remove the markers of clusters whose sentinel is gone (a SIGKILL during a slow stop leaves one behind)."""
    for marker in Path(tempfile.gettempdir()).glob(f"{MARKER_PREFIX}*"):
        pid, _, _ = marker.name.removeprefix(MARKER_PREFIX).partition("-")
        if not pid.isdigit() or not nodes.is_alive(int(pid)) or stop_marker(int(pid)).name != marker.name:
            marker.unlink(missing_ok=True)
            logger.info("removed a stale stop marker %s", marker.name)


def hand_back_on_stop() -> None:
    """On SIGTERM/SIGINT, tell this cluster's runners to hand their rows back instead of finishing their slice.

    django-q2 gives its workers no stop signal and runs tasks already prefetched before stopping, so the cluster's
    own handler is wrapped to leave a marker file, named after the sentinel, that runners check every round.
    """
    from django_q.cluster import Cluster

    original = Cluster.sig_handler

    def sig_handler(self: Cluster, signum: int, frame: object) -> None:
        marker = stop_marker(self.sentinel.pid) if self.sentinel is not None else None
        if marker:
            marker.touch()
        try:
            original(self, signum, frame)
        finally:
            if marker:
                marker.unlink(missing_ok=True)

    Cluster.sig_handler = sig_handler  # type: ignore[method-assign]


def beat_while_running() -> None:
    """Write this cluster's heartbeat (batches/cluster/heartbeat.py) from the moment its sentinel runs until it stops.

    Before anything starts, refuse a node name that another machine's live cluster holds (`refuse_a_taken_node`).
    """
    from django_q.cluster import Cluster

    original_start, original_stop = Cluster.start, Cluster.stop

    def start(self: Cluster) -> int:
        refuse_a_taken_node()
        pid = original_start(self)
        heartbeat.start()  # after the fork of the sentinel: no child inherits the heartbeat's connection
        return pid

    def stop(self: Cluster) -> bool:
        stopped = original_stop(self)  # it still counts as alive while it lets its tasks finish
        heartbeat.stop()
        return stopped

    Cluster.start = start  # type: ignore[method-assign]
    Cluster.stop = stop  # type: ignore[method-assign]


def refuse_a_taken_node() -> None:
    """CommandError (one line, exit status 1) when another machine's live cluster holds this node name.

    A database that does not answer (or is not migrated) never stops a start: the cluster then waits for it, as
    before.
    """
    try:
        holder = heartbeat.node_name_holder()
    except DatabaseError as exc:
        logger.warning("could not check whether another machine uses this node name: %s", exc)
        return
    if holder is not None:
        raise CommandError(
            f"refusing to start: BATCHES_NODE_NAME {heartbeat.node_name()!r} is held by a live cluster on another "
            f"machine ({holder['machine']}); give each machine its own BATCHES_NODE_NAME"
        )
