"""Leases: how a runner holds the rows it calls for, and what happens when it stops holding them.

A claimed row (a `Claim`, as handed to a runner) carries its runner's name (`lease_owner`), a fencing token and an
expiry; the runner renews it while the call is in flight and hands it back when it stops. A row whose lease
expired, or whose holder is known dead, is interrupted: its try is written as an `interrupted` Attempt and the row
is taken over by the next claim (services/claims.py) or reset by the sweep (services/recovery.py). Interrupted
runs keep their upstream ids, so the runner can ask Dify how they ended before calling again
(batches/runner/reconcile.py).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from batches.choices import ErrorType, ExecutionStatus, Trigger
from batches.conf import settings
from batches.db import clock
from batches.models import Attempt, Execution, WorkflowThrottle

logger = logging.getLogger(__name__)
NO_LEASE: dict[str, Any] = {"lease_owner": "", "lease_token": "", "lease_expires_at": None}
STALE_FIELDS = ("pk", "attempt_count", "next_trigger", "started_at", "workflow_run_id", "interruptions")


@dataclasses.dataclass
class Claim:
    """One row handed to a runner. `token` fences the result; `resume_run_id` asks recovery to look upstream."""

    execution_id: int
    batch_id: int
    workflow_id: int
    index: int
    inputs: dict[str, Any]
    token: str
    number: int
    trigger: str
    auto_retries: int
    max_retries: int
    retry_workflow_failed: bool
    resume_run_id: str = ""
    started_at: datetime = dataclasses.field(default_factory=timezone.now)
    adaptive: bool = False  # the workflow had an adaptive limit when this row was claimed
    run_id: str = ""  # the row's latest run id; the runner sets it when this call's stream announces its own
    task_id: str = ""


def lease_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.BATCHES_LEASE_SECONDS)


def renew_leases(owner: str, *, now: datetime | None = None) -> int:
    """Renew every lease `owner` holds: its rows, and the upstream health checks it is sending (services/circuit.py),
    which may take longer than a lease too; returns how many rows."""
    now = now or clock.now()
    WorkflowThrottle.objects.filter(probe_owner=owner).update(probe_expires_at=lease_expiry(now))
    return Execution.objects.running().filter(lease_owner=owner).update(lease_expires_at=lease_expiry(now))


def lost_claims(owner: str, *, execution_ids: list[int]) -> list[int]:
    """Of the rows a runner is calling for, those it no longer holds (cancelled, or taken over)."""
    held = Execution.objects.running().filter(pk__in=execution_ids, lease_owner=owner).values_list("pk", flat=True)
    return sorted(set(execution_ids) - set(held))


def release_claims(owner: str, *, now: datetime | None = None) -> int:
    """Hand a stopping runner's rows back to pending at once, as interrupted tries that cost no retry."""
    now = now or clock.now()
    with transaction.atomic():
        rows = Execution.objects.running().filter(lease_owner=owner).order_by().select_for_update(of=("self",))
        mine = list(rows.values(*STALE_FIELDS))
        Attempt.objects.bulk_create(ended_attempt(row, now, "The worker was stopped") for row in mine)
        return Execution.objects.filter(pk__in=[row["pk"] for row in mine]).update(
            status=ExecutionStatus.PENDING, next_trigger=Trigger.RECOVERY, **NO_LEASE
        )


def store_run_ids(started: list[Claim]) -> None:
    """Remember upstream ids announced by streams, so recovery can ask Dify how an interrupted run ended."""
    update_fenced(
        ["workflow_run_id", "task_id"], [(c, {"workflow_run_id": c.run_id, "task_id": c.task_id}) for c in started]
    )


def update_fenced(names: list[str], rows: list[tuple[Claim, dict[str, Any]]], *, added: Sequence[str] = ()) -> None:
    """One parameterised UPDATE run for many rows (psycopg pipelines it), each guarded by its lease token.

    The hot path of every runner: Django's bulk_update builds a CASE per field and row, which costs more CPU than
    the calls themselves. Only column names (from the model) are formatted into the SQL. The values of the `added`
    fields are added to the row's own: counts that another writer may change while the row's call is in flight.
    """
    if not rows:
        return
    fields = [_concrete_field(name) for name in [*names, *added]]
    quote = connection.ops.quote_name
    columns = [quote(field.column) for field in fields]
    assignments = ", ".join(f"{column} = %s" for column in columns[: len(names)])
    assignments += "".join(f", {column} = {column} + %s" for column in columns[len(names) :])
    sql = f"UPDATE {quote(Execution._meta.db_table)} SET {assignments} WHERE id = %s AND lease_token = %s"  # noqa: S608
    params = [[field.get_db_prep_save(values[field.name], connection) for field in fields] for _, values in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, [p + [c.execution_id, c.token] for p, (c, _) in zip(params, rows, strict=True)])


def _concrete_field(name: str) -> Field[Any, Any]:
    field = Execution._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def interrupt(stale: list[dict[str, Any]], now: datetime, *, batch_id: int | None = None) -> set[int]:
    """Write the `interrupted` Attempt of each expired row; fail those past the cap. Returns the failed ids.

    The caller holds the rows locked, so each interruption is written exactly once.
    """
    if not stale:
        return set()
    Attempt.objects.bulk_create(ended_attempt(row, now) for row in stale)
    gave_up = {row["pk"] for row in stale if row["interruptions"] + 1 > settings.BATCHES_MAX_INTERRUPTIONS}
    Execution.objects.filter(pk__in=[row["pk"] for row in stale]).update(
        interruptions=F("interruptions") + 1, next_trigger=Trigger.RECOVERY
    )
    Execution.objects.filter(pk__in=gave_up).update(
        status=ExecutionStatus.FAILED,
        error_type=ErrorType.INTERRUPTED,
        error=f"The worker running this row died {settings.BATCHES_MAX_INTERRUPTIONS + 1} times",
        finished_at=now,
        **NO_LEASE,
    )
    logger.warning("batch %s: %s interrupted rows taken over, %s failed", batch_id, len(stale), len(gave_up))
    return gave_up


def ended_attempt(
    row: dict[str, Any],
    now: datetime,
    reason: str = "The worker stopped renewing its lease",
    outcome: str = Attempt.Outcome.INTERRUPTED,
) -> Attempt:
    """The Attempt of a try that ended without a result (interrupted or cancelled); `row` has STALE_FIELDS."""
    return Attempt(
        execution_id=row["pk"],
        number=row["attempt_count"],
        trigger=row["next_trigger"],
        started_at=row["started_at"] or now,
        finished_at=now,
        outcome=outcome,
        error_type=ErrorType.INTERRUPTED if outcome == Attempt.Outcome.INTERRUPTED else ErrorType.CANCELLED,
        error=reason,
        workflow_run_id=row["workflow_run_id"],
    )
