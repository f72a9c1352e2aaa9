"""What processes share about themselves: RunnerSlot (a runner's place in the cluster-wide runner limit),
ClusterHeartbeat (a live qcluster, for take-overs and health) and ExportSlot (a download being streamed)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class RunnerSlotQuerySet(models.QuerySet["RunnerSlot"]):
    def held(self, now: datetime) -> RunnerSlotQuerySet:
        """Slots a runner holds and has renewed in time."""
        return self.exclude(owner="").filter(expires_at__gte=now)


class RunnerSlot(models.Model):
    """At most BATCHES_RUNNERS runners work at once; a wake-up that finds every slot held simply ends."""

    slot = models.PositiveSmallIntegerField(primary_key=True)
    owner = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    objects = RunnerSlotQuerySet.as_manager()

    def __str__(self) -> str:
        return f"slot {self.slot}: {self.owner or '-'}"


class ClusterHeartbeat(models.Model):
    """A qcluster's sign of life, written by its main process (django-q2's own Stat lives in a per-process cache)."""

    name = models.CharField(max_length=150, primary_key=True)  # "node:pid"
    node = models.CharField(max_length=100)
    pid = models.PositiveIntegerField()
    # The host name and boot id that wrote it (cluster/nodes.machine): tells two machines under one node name
    # apart. Empty in rows of an older release.
    machine = models.CharField(max_length=120, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.name


class ExportSlot(models.Model):
    """A download being streamed (an export or a comparison): each user may hold BATCHES_MAX_EXPORTS_PER_USER at once,
    so that one person cannot occupy every web thread. A slot whose process died is forgotten after a while."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"export of user {self.user_id} since {self.started_at}"
