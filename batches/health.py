"""What `/healthz` and `manage.py batches_doctor` report: database, migrations, live clusters, stuck batches.

At most three queries: applied migrations (which also proves the database answers), heartbeats, stuck batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from batches.models import BatchTask, ClusterHeartbeat, Execution

WORKER_WINDOW = timedelta(minutes=1)
STUCK_AFTER = timedelta(minutes=10)


@dataclass
class Health:
    database: bool = False
    unapplied_migrations: list[str] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)  # clusters seen within WORKER_WINDOW
    stuck: list[dict[str, Any]] = field(default_factory=list)  # running batches without progress for STUCK_AFTER

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
        return found + [f"batch #{batch['id']} {batch['name']} made no progress for 10 minutes" for batch in self.stuck]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "serving": self.serving, "problems": self.problems()}


def check(now: datetime | None = None) -> Health:
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
        health.stuck = [dict(row) for row in stuck_batches(now).values("id", "name")]
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
    return [dict(row) for row in seen.values("node", "pid", "started_at", "seen_at")]


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
