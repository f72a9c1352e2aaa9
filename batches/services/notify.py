"""Notifications through an outbox: what to tell whom when a batch finishes, pauses, is cancelled or waits for Dify.

`batch_event` writes the outbox rows inside the transaction of the batch's transition (so a notification exists
exactly when the transition committed) and wakes a sender after the commit. `deliver_due` sends them: each row is
claimed for a while (a conditional UPDATE), sent outside any transaction, then marked delivered, or tried again
later with a growing backoff. A sender killed mid-send leaves its claim to expire and the row is sent again: at
least once. A batch's messages go out in order per channel: a row is due only when no earlier one of its batch and
channel is still pending. The minute sweep (`sweep`) notes batches waiting for Dify too long and wakes a sender
when rows are due, so a crash between the commit and the wake-up loses nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.urls import reverse
from django_q.tasks import async_task

from batches import delivery
from batches.choices import CircuitState
from batches.conf import settings
from batches.db import clock
from batches.models import BatchTask, Execution, Notification, Workflow
from batches.services import audit

logger = logging.getLogger(__name__)
Event = Notification.Event
COUNTED = ("succeeded", "failed", "cancelled")
SAMPLE = {
    "id": 0,
    "name": "test",
    "status": "finished",
    "reason": "",
    "total": 0,
    "url": "",
    **dict.fromkeys(COUNTED, 0),
}


def batch_event(batch_ids: Iterable[int], event: str) -> None:
    """Write the notifications of batches that just changed state. Call it in the transition's transaction."""
    batches = BatchTask.objects.filter(pk__in=list(batch_ids)).select_related("workflow", "created_by")
    rows = [row for batch in batches for row in _rows(batch, event)]
    if rows:
        Notification.objects.bulk_create(rows)
        transaction.on_commit(wake_sender)


def _rows(batch: BatchTask, event: str) -> list[Notification]:
    workflow, payload = batch.workflow, batch_payload(batch)
    rows = []
    if workflow.webhook_url:
        rows.append(Notification(batch=batch, workflow=workflow, event=event, channel="webhook", payload=payload))
    recipients = _recipients(batch)
    if recipients:
        rows.append(
            Notification(
                batch=batch, workflow=workflow, event=event, channel="email", recipients=recipients, payload=payload
            )
        )
    return rows


def _recipients(batch: BatchTask) -> list[str]:
    creator = batch.created_by.email if batch.created_by is not None else ""
    return list(dict.fromkeys(address for address in [creator, *batch.workflow.notify_emails] if address))


def batch_payload(batch: BatchTask) -> dict[str, Any]:
    """The webhook body's "batch" object (design.md's contract), counted now."""
    counts = dict(Execution.objects.filter(batch=batch).order_by().values_list("status").annotate(n=Count("pk")))
    return {
        "id": batch.pk,
        "name": batch.name,
        "status": batch.status,
        "reason": batch.status_reason,
        "total": batch.total,
        **{status: counts.get(status, 0) for status in COUNTED},
        "url": settings.BATCHES_SITE_URL + reverse("batches:batch_detail", args=[batch.pk]),
    }


def send_test(workflow_id: int) -> int:
    """Queue a test message on each channel the workflow has ("Send test"); returns how many were queued."""
    workflow = Workflow.objects.get(pk=workflow_id)
    latest = workflow.batches.order_by("-pk").first()
    payload = batch_payload(latest) if latest is not None else SAMPLE
    rows = []
    if workflow.webhook_url:
        rows.append(Notification(workflow=workflow, event=Event.TEST, channel="webhook", payload=payload))
    if workflow.notify_emails:
        recipients = list(workflow.notify_emails)
        rows.append(Notification(workflow=workflow, event=Event.TEST, channel="email", recipients=recipients))
        rows[-1].payload = payload
    with transaction.atomic():
        Notification.objects.bulk_create(rows)
        transaction.on_commit(wake_sender)
    return len(rows)


@transaction.atomic
def rotate_webhook_secret(workflow_id: int, *, actor: audit.Actor | None = None) -> str:
    """A new secret for the workflow's webhook, returned once to be shown once (stored encrypted, like the key)."""
    secret = secrets.token_urlsafe(32)
    workflow = Workflow.objects.get(pk=workflow_id)
    workflow.webhook_secret = secret
    workflow.save(update_fields=["webhook_secret", "updated_at"])
    audit.record(actor, audit.Action.WEBHOOK_SECRET, workflow_id=workflow_id)
    return secret


def wake_sender() -> None:
    async_task("batches.tasks.deliver_notifications", task_name="batches-notify")


# --- the minute sweep ---------------------------------------------------------------------------------------


def sweep(*, now: datetime | None = None) -> int:
    """Note batches waiting for Dify too long, and wake a sender if anything is due; returns how many are due."""
    now = now or clock.now()
    note_waiting(now)
    due = Notification.objects.due(now).count()
    if due:
        wake_sender()
    return due


def note_waiting(now: datetime) -> list[int]:
    """Running batches whose workflow's circuit has not been closed for BATCHES_NOTIFY_WAITING_MINUTES, once per
    outage."""
    minutes = settings.BATCHES_NOTIFY_WAITING_MINUTES
    if not minutes:
        return []
    told = Notification.objects.filter(
        batch=OuterRef("pk"), event=Event.WAITING, created_at__gte=OuterRef("workflow__throttle__circuit_since")
    )
    waiting = (
        BatchTask.objects.running()
        .exclude(workflow__throttle__circuit=CircuitState.CLOSED)
        .filter(workflow__throttle__circuit_since__lte=now - timedelta(minutes=minutes))
        .filter(~Exists(told))
    )
    noted = list(waiting.values_list("pk", flat=True))
    with transaction.atomic():
        batch_event(noted, Event.WAITING)
    return noted


# --- sending ------------------------------------------------------------------------------------------------


def deliver_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Send what is due, oldest first, until nothing is or `limit` were tried; returns how many were delivered."""
    delivered = tried = 0
    while tried < limit:
        at = now or clock.now()
        due = list(Notification.objects.due(at).order_by("pk").values_list("pk", flat=True)[: limit - tried])
        if not due:
            break
        for pk in due:
            token = _claim(pk, at)
            tried += 1
            delivered += bool(token) and _deliver(pk, token, at)
    return delivered


def _claim(pk: int, now: datetime) -> str:
    token = secrets.token_hex(8)
    hold = now + timedelta(seconds=3 * settings.BATCHES_NOTIFY_TIMEOUT + 30)
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = Notification.objects.pending().filter(free, pk=pk).update(claimed_until=hold, claim_token=token)
    return token if claimed else ""


def _deliver(pk: int, token: str, now: datetime) -> bool:
    notification = Notification.objects.select_related("workflow").get(pk=pk)
    try:
        answer = _send(notification)
    except delivery.DeliveryFailed as exc:
        _failed(notification, token, str(exc), now)
        return False
    mine = Notification.objects.filter(pk=pk, claim_token=token)
    mine.update(status=Notification.Status.DELIVERED, delivered_at=now, answer=answer, tries=notification.tries + 1)
    return True


def _send(notification: Notification) -> str:
    event, batch = notification.event, notification.payload
    if notification.channel == Notification.Channel.EMAIL:
        return delivery.send_email(notification.recipients, event=event, batch=batch)
    workflow = notification.workflow
    if not workflow.webhook_url:
        raise delivery.DeliveryFailed("the workflow has no webhook URL")
    raw = delivery.body(event, clock.now().isoformat(), batch)
    return delivery.post_webhook(workflow.webhook_url, secret=str(workflow.webhook_secret), event=event, raw=raw)


def _failed(notification: Notification, token: str, answer: str, now: datetime) -> None:
    tries = notification.tries + 1
    wait = min(settings.BATCHES_NOTIFY_BACKOFF_CAP, settings.BATCHES_NOTIFY_BACKOFF_BASE * 2 ** (tries - 1))
    gave_up = tries >= settings.BATCHES_NOTIFY_MAX_TRIES
    status = Notification.Status.FAILED if gave_up else Notification.Status.PENDING
    Notification.objects.filter(pk=notification.pk, claim_token=token).update(
        tries=tries, answer=answer, status=status, next_at=now + timedelta(seconds=wait), claimed_until=None
    )
    logger.warning(
        "notification %s (%s) not delivered, try %s: %s", notification.pk, notification.channel, tries, answer
    )
