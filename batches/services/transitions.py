"""The one guarded write for batch states, and the error a refused change raises.

Every batch status change goes through `transition` (people's requests in `lifecycle`, the pauses the app or the
failure rate ask for in `results` and `claims`, finishing in `claims`, the runner and `recovery`, reopening in
`recovery` and `lifecycle`): an UPDATE conditional on the current state, so two requests racing cannot both apply.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import DurationField, Exists, ExpressionWrapper, F, OuterRef, QuerySet, Value
from django.db.models.functions import Coalesce

from batches.choices import BatchStatus
from batches.db import clock
from batches.models import BatchTask, Execution
from batches.services import audit, notify

logger = logging.getLogger(__name__)


class TransitionError(Exception):
    """The batch (or row) is not in a state that allows the requested change; the message says which."""


def transition(batches: int | Collection[int] | QuerySet[BatchTask], *, allowed: Iterable[str], **changes: Any) -> int:
    """Apply `changes` to the batches that are in an `allowed` state; returns how many were changed.

    A status change also keeps the batch's running time, in the same UPDATE.
    """
    if isinstance(batches, QuerySet):
        rows = batches
    else:
        rows = BatchTask.objects.filter(pk__in=[batches] if isinstance(batches, int) else list(batches))
    allowed = list(allowed)
    if "status" in changes:
        changes = {**running_time(changes["status"], allowed), **changes}
    return rows.filter(status__in=allowed).update(**changes)


def running_time(status: str, allowed: list[str]) -> dict[str, Any]:
    """Entering `running` starts the clock; leaving it adds the stretch to `run_time` (a batch in another allowed
    state has no `running_since`, so it adds nothing)."""
    now = clock.now()
    if status == BatchStatus.RUNNING:
        return {"running_since": now}
    if BatchStatus.RUNNING not in allowed:
        return {}
    stretch = ExpressionWrapper(Value(now) - Coalesce("running_since", Value(now)), output_field=DurationField())
    return {"run_time": F("run_time") + stretch, "running_since": None}


def require(changed: int, batch_id: int, refusal: str) -> None:
    """Raise TransitionError("batch 7 …") when a one-batch transition changed nothing."""
    if not changed:
        raise TransitionError(f"batch {batch_id} {refusal}")


@transaction.atomic
def pause(batch_id: int, *, reason: str) -> bool:
    """Pause a running batch for a reason the app or the data gave (not a person)."""
    changes = {"status": BatchStatus.PAUSED, "status_reason": reason[:500]}
    paused = bool(transition(batch_id, allowed=[BatchStatus.RUNNING], **changes))
    if paused:
        logger.warning("batch %s paused: %s", batch_id, reason)
        audit.record_system([batch_id], audit.Action.PAUSED_BY_SYSTEM, reason=reason)
        notify.batch_event([batch_id], notify.Event.PAUSED)
    return paused


@transaction.atomic
def finish_done(batch_ids: Collection[int] | None = None, *, now: datetime | None = None) -> int:
    """Finish running batches with nothing pending or running.

    The batch rows are locked first, and the rows are counted in a statement after that: a retry or a cancel
    (which lock the batch too) has then either committed and is seen, or waits. A single UPDATE would re-check
    only the batch row after waiting, and finish a batch whose rows a retry had just sent back to pending.
    """
    batches = BatchTask.objects.running().order_by("pk").select_for_update(of=("self",))
    if batch_ids is not None:
        batches = batches.filter(pk__in=list(batch_ids))
    locked = list(batches.values_list("pk", flat=True))
    if not locked:
        return 0
    done = BatchTask.objects.filter(pk__in=locked).filter(
        ~Exists(Execution.objects.filter(batch=OuterRef("pk")).unfinished())
    )
    done_ids = list(done.values_list("pk", flat=True))  # locked: exactly the batches the UPDATE finishes
    finished = transition(
        done_ids, allowed=[BatchStatus.RUNNING], status=BatchStatus.FINISHED, finished_at=now or clock.now()
    )
    audit.record_system(done_ids, audit.Action.FINISHED)
    notify.batch_event(done_ids, notify.Event.FINISHED)
    return finished
