"""Batch state changes requested by people (admin, pages, commands): start, pause, resume, cancel, retry, settings.

Conventions: the object acted on (a batch id, a row id, a queryset) is positional and every option is
keyword-only; a change the batch's state does not allow raises `TransitionError` (from `transitions`, the one
guarded write every status change goes through); retries answer a `RetryReport`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from batches.choices import ACTIVE, ENDED, RUN_ENDED_ERRORS, BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.imports import files, inputs
from batches.models import Attempt, BatchTask, Execution
from batches.services import audit, file_uploads, notify
from batches.services.audit import Action, Actor
from batches.services.claims import wake_runners
from batches.services.leases import STALE_FIELDS, ended_attempt
from batches.services.transitions import TransitionError, require, transition
from batches.services.workflows import DifyMoved, read_input_variables

BULK_CHANGE = 1000  # rows changed at once past which the planner's statistics are refreshed


@transaction.atomic
def start_batch(batch_id: int, *, actor: Actor | None = None) -> None:
    started = transition(batch_id, allowed=[BatchStatus.PENDING], status=BatchStatus.RUNNING, started_at=timezone.now())
    require(started, batch_id, "is not pending: it cannot be started")
    audit.record(actor, Action.START, batch_id=batch_id)
    transaction.on_commit(wake_runners)


@transaction.atomic
def pause_batch(batch_id: int, *, reason: str = "", actor: Actor | None = None) -> None:
    paused = transition(batch_id, allowed=[BatchStatus.RUNNING], status=BatchStatus.PAUSED, status_reason=reason[:500])
    require(paused, batch_id, "is not running: it cannot be paused")
    audit.record(actor, Action.PAUSE, batch_id=batch_id, reason=reason)
    notify.batch_event([batch_id], notify.Event.PAUSED)


@transaction.atomic
def resume_batch(batch_id: int, *, actor: Actor | None = None) -> None:
    resumed = transition(batch_id, allowed=[BatchStatus.PAUSED], status=BatchStatus.RUNNING, status_reason="")
    require(resumed, batch_id, "is not paused: it cannot be resumed")
    audit.record(actor, Action.RESUME, batch_id=batch_id)
    transaction.on_commit(wake_runners)


@transaction.atomic
def set_concurrency(batch_id: int, *, concurrency: int, actor: Actor | None = None) -> None:
    """Change how many rows of a batch may run at once; runners see it at their next claim."""
    if not 1 <= concurrency <= 10_000:
        raise ValueError("concurrency must be between 1 and 10000")
    changed = transition(batch_id, allowed=ACTIVE, concurrency=concurrency)
    require(changed, batch_id, "is finished or cancelled: its concurrency cannot be changed")
    audit.record(actor, Action.SETTINGS, batch_id=batch_id, detail={"concurrency": concurrency})


EDITABLE_SETTINGS = {"name", "concurrency", "max_retries", "failure_threshold", "failure_threshold_min_rows"}


@transaction.atomic
def update_settings(batch_id: int, *, actor: Actor | None = None, **changes: Any) -> None:
    """Change a batch's editable settings (not its state) with one UPDATE of just those columns."""
    unknown = set(changes) - EDITABLE_SETTINGS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if changes:
        BatchTask.objects.filter(pk=batch_id).update(**changes)
        audit.record(actor, Action.SETTINGS, batch_id=batch_id, detail=changes)


def _reopen(batch_id: int, rows: int) -> None:
    """A retry of an ended batch's rows runs it again, keeping how it had ended and how many rows came back."""
    reopened = {"reopened_from": F("status"), "reopened_rows": rows}
    transition(batch_id, allowed=ENDED, status=BatchStatus.RUNNING, finished_at=None, status_reason="", **reopened)


def _lock_batches(batch_ids: Iterable[int]) -> None:
    """Retry, cancel, claims and finishing serialise on the batch row (always taken in id order), so none of them
    acts on rows another is changing: no finished or cancelled batch is left with pending rows."""
    locked = BatchTask.objects.filter(pk__in=list(batch_ids)).order_by("pk").select_for_update(of=("self",))
    list(locked.values_list("pk", flat=True))


@transaction.atomic
def cancel_batch(batch_id: int, *, actor: Actor | None = None) -> int:
    """Cancel the batch and its unfinished rows; returns how many rows were cancelled."""
    now = timezone.now()
    _lock_batches([batch_id])
    changed = transition(batch_id, allowed=ACTIVE, status=BatchStatus.CANCELLED, finished_at=now)
    require(changed, batch_id, "is finished or cancelled: it cannot be cancelled")
    # Locked, so a result being written now is either seen (and its row is no longer running) or waits: never a
    # cancelled Attempt with the number of the Attempt that result writes.
    locked = Execution.objects.filter(batch_id=batch_id).running().order_by().select_for_update(of=("self",))
    running = list(locked.values(*STALE_FIELDS))
    cancelled = Attempt.Outcome.CANCELLED
    Attempt.objects.bulk_create(ended_attempt(row, now, "Cancelled by staff", cancelled) for row in running)
    # Clearing the lease token fences off the in-flight calls: their results are discarded.
    ended = (
        Execution.objects.filter(batch_id=batch_id)
        .unfinished()
        .update(
            status=ExecutionStatus.CANCELLED,
            error_type=ErrorType.CANCELLED,
            error="Cancelled by staff",
            finished_at=now,
            lease_owner="",
            lease_token="",
            lease_expires_at=None,
            not_before=None,
        )
    )
    audit.record(actor, Action.CANCEL, batch_id=batch_id, rows=ended)
    notify.batch_event([batch_id], notify.Event.CANCELLED)  # after the rows, so the message counts them
    return ended


@dataclass
class RetryReport:
    retried: int
    skipped: int
    batches: int


@transaction.atomic
def retry_executions(
    executions: Any,
    *,
    include_cancelled: bool = False,
    inputs: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> RetryReport:
    """Send failed (and optionally cancelled) rows of `executions` back to pending as a manual retry."""
    retryable = [ExecutionStatus.FAILED] + ([ExecutionStatus.CANCELLED] if include_cancelled else [])
    selected = executions.count()
    rows = Execution.objects.filter(pk__in=executions.values("pk"), status__in=retryable)
    batch_ids = set(rows.order_by().values_list("batch_id", flat=True).distinct())
    _lock_batches(batch_ids)
    picked = list(rows.order_by().values_list("batch_id", "batch__workflow_id", "pk"))  # locked: what UPDATE changes
    per_batch = Counter(batch_id for batch_id, _, _ in picked)  # for "cancelled, then N rows retried"
    # A row's latest run is looked up before it pays again, unless its end was seen or its inputs are edited.
    ended = Case(When(error_type__in=RUN_ENDED_ERRORS, then=Value("")), default=F("workflow_run_id"))
    changes: dict[str, Any] = {"workflow_run_id": ended}  # the Attempts keep every run id
    if inputs is not None:
        _keep_sent_inputs(rows, inputs)
        changes.update(inputs=inputs, workflow_run_id="")
    retried = rows.update(
        status=ExecutionStatus.PENDING,
        error_type="",
        error="",
        http_status=None,
        not_before=None,
        finished_at=None,
        auto_retries=0,
        interruptions=0,
        manual_retries=F("manual_retries") + 1,
        next_trigger=Trigger.MANUAL,
        **changes,
    )
    for batch_id in batch_ids:
        _reopen(batch_id, per_batch.get(batch_id, retried))
    audit.record_retry(picked, actor, edited=inputs is not None)
    if retried >= BULK_CHANGE:
        transaction.on_commit(Execution.refresh_statistics)
    if retried:
        transaction.on_commit(wake_runners)
    return RetryReport(retried=retried, skipped=selected - retried, batches=len(batch_ids))


def _keep_sent_inputs(rows: Any, inputs: dict[str, Any]) -> None:
    """The attempts so far were sent the rows' current inputs: write those on them before an edit replaces them,
    so the history shows what each attempt was sent (an attempt without inputs was sent the row's inputs)."""
    for row_id, sent in rows.values_list("pk", "inputs"):
        if sent != inputs:
            Attempt.objects.filter(execution_id=row_id, inputs__isnull=True).update(inputs=sent)


def retry_failed(
    batch_id: int,
    *,
    execution_ids: list[int] | None = None,
    error_type: str | None = None,
    include_cancelled: bool = False,
    actor: Actor | None = None,
) -> RetryReport:
    executions = Execution.objects.filter(batch_id=batch_id)
    if execution_ids:
        executions = executions.filter(pk__in=execution_ids)
    if error_type:
        executions = executions.filter(Q(error_type=error_type))
    return retry_executions(executions, include_cancelled=include_cancelled, actor=actor)


def retry_execution(execution_id: int, *, inputs: dict[str, Any] | None = None, actor: Actor | None = None) -> None:
    """Retry one failed or cancelled row, with edited inputs if given (the pages' and the admin's "edit and
    retry"), converted first to the types the app declares (`typed_inputs`: InputError if the app would refuse
    them); TransitionError if the row is in another state. Asks the app (network): call it outside any lock."""
    if inputs is not None:
        inputs = _typed_for(execution_id, inputs)
    report = retry_executions(
        Execution.objects.filter(pk=execution_id), include_cancelled=True, inputs=inputs, actor=actor
    )
    if not report.retried:
        raise TransitionError(f"execution {execution_id} is not failed or cancelled: it cannot be retried")


def _typed_for(execution_id: int, inputs: dict[str, Any]) -> dict[str, Any]:
    execution = Execution.objects.select_related("batch__workflow").filter(pk=execution_id).first()
    return inputs if execution is None else typed_inputs(execution, edited=inputs)  # no row: the retry says so


def typed_inputs(execution: Execution, *, edited: dict[str, Any]) -> dict[str, Any]:
    """Edited inputs converted to the types the app declares, before a manual retry (inputs.InputError if the app
    would refuse them). Asks the app (network): call it outside any lock."""
    batch = execution.batch
    try:
        variables = read_input_variables(batch.workflow, config=batch.config) or None
    except DifyMoved as moved:
        raise inputs.InputError(str(moved)) from None
    if not variables:
        return edited
    with files.archive_scope(file_uploads.BatchFiles(batch.pk)):  # a ZIP batch's rows may name its files
        return inputs.convert_row(edited, variables)
