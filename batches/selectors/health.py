"""What `/healthz` and `manage.py batches_doctor` report: database, migrations, live clusters, stuck batches,
batches waiting for Dify (their workflow's upstream circuit is open), and a node name that several machines use
(batches/cluster/heartbeat.py: their clusters would take each other's live rows; a second one refuses to start).

A few queries: applied migrations (which also proves the database answers), heartbeats, one for the running
batches that are stuck or waiting, and retention's (batches due for pruning, prunes under way).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from batches.choices import CircuitState
from batches.cluster import heartbeat, nodes
from batches.conf import settings
from batches.models import BatchTask, ClusterHeartbeat, Execution
from batches.selectors.batches import iso

WORKER_WINDOW = timedelta(minutes=1)
STUCK_AFTER = timedelta(minutes=10)
PRUNE_STALLED = timedelta(minutes=30)


@dataclass
class Health:
    database: bool = False
    unapplied_migrations: list[str] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)  # clusters seen within WORKER_WINDOW
    stuck: list[dict[str, Any]] = field(default_factory=list)  # running batches without progress for STUCK_AFTER
    waiting_for_dify: list[dict[str, Any]] = field(default_factory=list)  # running batches whose upstream is down
    shared_node_names: list[dict[str, Any]] = field(default_factory=list)  # {"node", "machines"}: live clusters'
    node_name_taken_by: list[str] = field(default_factory=list)  # other machines whose clusters use this one's name
    # Retention: BATCHES_KEEP_DAYS (None: off), batches due for pruning, and batches whose prune is under way.
    retention: dict[str, Any] = field(default_factory=dict)

    @property
    def serving(self) -> bool:
        """What a load balancer needs: the database answers and the schema is the code's."""
        return self.database and not self.unapplied_migrations

    def problems(self) -> list[str]:
        """Everything an operator should act on, one line each."""
        if not self.database:
            return ["the database does not answer"]
        if self.unapplied_migrations:
            count, first = len(self.unapplied_migrations), self.unapplied_migrations[0]
            return [f"{count} migration(s) not applied, first {first}: run manage.py migrate"]
        found = [] if self.workers else ["no worker cluster was seen in the last minute"]
        found += [f"batch #{batch['id']} {batch['name']} made no progress for 10 minutes" for batch in self.stuck]
        found += [
            f"batch #{batch['id']} has been half pruned since {batch['since']}: run manage.py prune_batches"
            for batch in self.retention.get("pruning", [])
            if batch["stalled"]
        ]
        found += [
            f"batch #{batch['id']} {batch['name']} waits for Dify since {batch['since']}: {batch['last_error']}"
            for batch in self.waiting_for_dify
        ]
        return found + self.node_name_problems()

    def node_name_problems(self) -> list[str]:
        found = [
            f"node name {shared['node']!r} is used by clusters on {len(shared['machines'])} machines "
            f"({', '.join(shared['machines'])}): give each machine its own BATCHES_NODE_NAME"
            for shared in self.shared_node_names
        ]
        if self.node_name_taken_by and not self.shared_node_names:
            found.append(
                f"this machine's node name {heartbeat.node_name()!r} is held by a cluster on another machine "
                f"({', '.join(self.node_name_taken_by)}): a qcluster started here refuses to start; set "
                "BATCHES_NODE_NAME"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "serving": self.serving, "problems": self.problems()}


def check(now: datetime | None = None, *, with_retention: bool = False) -> Health:
    now = now or timezone.now()
    health = Health()
    try:
        connection.cursor().close()  # connects (or finds a dropped connection unusable) without counting a query
    except DatabaseError:
        return health
    health.database = True
    health.unapplied_migrations = unapplied_migrations()
    if not health.unapplied_migrations:
        health.workers = live_clusters(now)
        health.shared_node_names, health.node_name_taken_by = node_name_conflicts(health.workers)
        health.stuck, health.waiting_for_dify = stuck_or_waiting(now)
        health.retention = retention(now) if with_retention else {}  # the doctor's; /healthz stays three queries
    return health


@cache
def known_migrations() -> frozenset[tuple[str, str]]:
    """The migrations on disk; read once per process (the code does not change under a running process)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def unapplied_migrations() -> list[str]:
    try:
        applied = set(MigrationRecorder.Migration.objects.values_list("app", "name"))
    except DatabaseError:  # no django_migrations table: nothing was ever migrated
        applied = set()
    return sorted(f"{app}.{name}" for app, name in known_migrations() - applied)


def live_clusters(now: datetime) -> list[dict[str, Any]]:
    seen = ClusterHeartbeat.objects.filter(seen_at__gte=now - WORKER_WINDOW).order_by("node", "pid")
    return [dict(row) for row in seen.values("node", "pid", "machine", "started_at", "seen_at")]


def node_name_conflicts(workers: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Node names whose live clusters run on several machines, and the other machines using this one's name."""
    machines: dict[str, set[str]] = {}
    for worker in workers:
        if worker["machine"]:  # empty: a row of an older release
            machines.setdefault(worker["node"], set()).add(worker["machine"])
    shared = [{"node": node, "machines": sorted(found)} for node, found in sorted(machines.items()) if len(found) > 1]
    taken_by = sorted(machines.get(heartbeat.node_name(), set()) - {nodes.machine()})
    return shared, taken_by


def stuck_or_waiting(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Running batches that are stuck, and those waiting for Dify (not stuck: they wait for a reason), in one query."""
    # Open since a moment (a circuit still asking Dify after a streak has no `since`: it is neither, for now).
    waiting = Q(
        workflow__throttle__circuit__in=[CircuitState.OPEN, CircuitState.HALF_OPEN],
        workflow__throttle__circuit_since__isnull=False,
    )
    rows = BatchTask.objects.running().filter(Q(pk__in=stuck_batches(now).values("pk")) | waiting).order_by("pk")
    stuck: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for pk, name, since, last_error in rows.values_list(
        "id", "name", "workflow__throttle__circuit_since", "workflow__throttle__last_error"
    ):
        if since is None:
            stuck.append({"id": pk, "name": name})
        else:
            held.append({"id": pk, "name": name, "since": iso(since), "last_error": last_error})
    return stuck, held


def retention(now: datetime) -> dict[str, Any]:
    """What pruning keeps and has to do: batches due (when BATCHES_KEEP_DAYS is set), and prunes under way (one
    left for PRUNE_STALLED was killed, and no sweep prunes: a problem)."""
    keep_days = settings.BATCHES_KEEP_DAYS
    due = BatchTask.objects.prunable(before=now - timedelta(days=keep_days)).count() if keep_days is not None else None
    marked = BatchTask.objects.filter(pruning_since__isnull=False).order_by("pk").values_list("pk", "pruning_since")
    pruning = [
        {"id": pk, "since": iso(since), "stalled": bool(since and since < now - PRUNE_STALLED)} for pk, since in marked
    ]
    return {"keep_days": keep_days, "due": due, "pruning": pruning}


def stuck_batches(now: datetime) -> QuerySet[BatchTask]:
    """Running batches with work left where, for STUCK_AFTER, no row finished and no running row was claimed.

    Both tests use indexes ((batch, finished_at) and the few running rows of (batch, status, index)).
    """
    since = now - STUCK_AFTER
    finished = Execution.objects.filter(batch=OuterRef("pk"), finished_at__gte=since)
    claimed = Execution.objects.running().filter(batch=OuterRef("pk"), started_at__gte=since)
    return (
        BatchTask.objects.running()
        .with_work()
        .filter(started_at__lt=since)
        .exclude(Exists(finished))
        .exclude(Exists(claimed))
        .order_by("pk")
    )
