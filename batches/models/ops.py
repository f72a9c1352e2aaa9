"""What operators are told and can read back: the notification outbox and the audit log (issue 31).

Imported by batches/models/__init__.py, where Django finds the app's models; the foreign keys are named by string so
this module needs nothing from the other model modules.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _


class NotificationQuerySet(models.QuerySet["Notification"]):
    def pending(self) -> NotificationQuerySet:
        return self.filter(status=Notification.Status.PENDING)

    def due(self, now: datetime) -> NotificationQuerySet:
        """Pending rows whose backoff has passed, that no live sender holds, and with no earlier pending row of
        the same batch and channel: a batch's notifications go out in order."""
        earlier = Notification.objects.pending().filter(
            batch=OuterRef("batch"), channel=OuterRef("channel"), pk__lt=OuterRef("pk")
        )
        free = models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lt=now)
        ready = models.Q(next_at__isnull=True) | models.Q(next_at__lte=now)
        return self.pending().filter(free, ready, models.Q(batch__isnull=True) | ~Exists(earlier))


class Notification(models.Model):
    """One message to send (an email to its recipients, or one webhook POST), written in the transaction of the
    batch transition that caused it and sent after it commits."""

    class Event(models.TextChoices):
        FINISHED = "finished", _("Finished")
        PAUSED = "paused", _("Paused")
        CANCELLED = "cancelled", _("Cancelled")
        WAITING = "waiting", _("Waiting for Dify")
        TEST = "test", _("Test")

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        WEBHOOK = "webhook", _("Webhook")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Given up")

    batch = models.ForeignKey("batches.BatchTask", null=True, blank=True, on_delete=models.CASCADE)
    workflow = models.ForeignKey("batches.Workflow", on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(_("event"), max_length=20, choices=Event)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel)
    recipients = models.JSONField(_("recipients"), default=list, blank=True)  # email addresses
    payload = models.JSONField(_("batch"), default=dict)  # the body's "batch" object, as at the transition
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.PENDING)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    next_at = models.DateTimeField(_("next try"), null=True, blank=True)  # empty: at once
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    tries = models.PositiveIntegerField(_("tries"), default=0)
    answer = models.CharField(_("last answer"), max_length=300, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        indexes = [models.Index(fields=["status", "next_at"], name="notification_due_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.channel} #{self.batch_id}"


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def for_batch(self, batch_id: int) -> AuditEntryQuerySet:
        return self.filter(batch_id=batch_id).order_by("-at", "-id")


class AuditEntry(models.Model):
    """One staff action (or one of the system's own transitions), from whichever face it came."""

    class Action(models.TextChoices):
        START = "start", _("Start")
        PAUSE = "pause", _("Pause")
        RESUME = "resume", _("Resume")
        CANCEL = "cancel", _("Cancel")
        RETRY = "retry", _("Retry")
        EDIT_INPUTS = "edit_inputs", _("Edit inputs and retry")
        SETTINGS = "settings", _("Change settings")
        WORKFLOW = "workflow", _("Change workflow")
        WORKFLOW_KEY = "workflow_key", _("Change workflow API key")
        WEBHOOK_SECRET = "webhook_secret", _("New webhook secret")
        PRUNE = "prune", _("Prune")
        # The system's own transitions
        PAUSED_BY_SYSTEM = "paused_by_system", _("Paused by the system")
        REOPENED = "reopened", _("Reopened by the sweep")
        FINISHED = "finished", _("Finished")

    class Face(models.TextChoices):
        PAGE = "page", _("Pages")
        ADMIN = "admin", _("Admin")
        CLI = "cli", _("Command line")
        SYSTEM = "system", _("System")

    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    actor = models.CharField(_("who"), max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    face = models.CharField(_("from"), max_length=10, choices=Face)
    action = models.CharField(_("what"), max_length=20, choices=Action)
    batch = models.ForeignKey(
        "batches.BatchTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    workflow = models.ForeignKey("batches.Workflow", null=True, blank=True, on_delete=models.SET_NULL)
    rows = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action}"
