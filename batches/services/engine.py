"""State changes made by runners: claiming rows under a lease, recording results, renewing leases, sweeping.

Every write is guarded: a claim locks the batch row for its short transaction (so concurrency holds across all
processes), a result is written only while the row's lease token is still the one handed out with the claim, and
the sweep locks the expired rows it resets. No function here touches the network.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from batches.dify import CallResult
from batches.models import (
    PAUSING_ERRORS,
    TRANSIENT_ERRORS,
    Attempt,
    BatchStatus,
    BatchTask,
    ErrorType,
    Execution,
    ExecutionStatus,
    RunnerSlot,
    Trigger,
)

logger = logging.getLogger(__name__)
NO_LEASE: dict[str, Any] = {"lease_owner": "", "lease_token": "", "lease_expires_at": None}
STALE_FIELDS = ("pk", "attempt_count", "next_trigger", "started_at", "workflow_run_id", "interruptions")


def lease_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.BATCHES_LEASE_SECONDS)


def wake_runners() -> None:
    """Enqueue a runner. Runners are wake-ups only: a duplicate finds no free slot or no work and ends."""
    from django_q.tasks import async_task

    async_task("batches.tasks.run_batches", task_name="batches-runner")


# --- runner slots ---------------------------------------------------------------------------------------------


def acquire_slot(owner: str, now: datetime | None = None) -> int | None:
    now = now or timezone.now()
    slots = range(settings.BATCHES_RUNNERS)
    RunnerSlot.objects.bulk_create([RunnerSlot(slot=n) for n in slots], ignore_conflicts=True)
    free = Q(owner="") | Q(expires_at__lt=now)
    for n in slots:
        if RunnerSlot.objects.filter(free, slot=n).update(owner=owner, expires_at=lease_expiry(now)):
            return n
    return None


def renew_slot(slot: int, owner: str, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return bool(RunnerSlot.objects.filter(slot=slot, owner=owner).update(expires_at=lease_expiry(now)))


def release_slot(slot: int, owner: str) -> None:
    RunnerSlot.objects.filter(slot=slot, owner=owner).update(owner="", expires_at=None)


# --- claims ---------------------------------------------------------------------------------------------------


@dataclass
class Claim:
    """One row handed to a runner. `token` fences the result; `resume_run_id` asks recovery to look upstream."""

    execution_id: int
    batch_id: int
    index: int
    inputs: dict[str, Any]
    token: str
    number: int
    trigger: str
    auto_retries: int
    max_retries: int
    retry_workflow_failed: bool
    resume_run_id: str = ""
    started_at: datetime = field(default_factory=timezone.now)


def runnable_batches() -> list[BatchTask]:
    return list(BatchTask.objects.running().with_work().select_related("workflow").order_by("pk"))


def has_work() -> bool:
    return BatchTask.objects.running().with_work().exists()


@transaction.atomic
def claim(batch_id: int, owner: str, limit: int, now: datetime | None = None) -> list[Claim]:
    """Claim up to `limit` rows of a running batch without exceeding its concurrency anywhere."""
    now = now or timezone.now()
    batch = BatchTask.objects.select_for_update().filter(pk=batch_id, status=BatchStatus.RUNNING).first()
    if batch is None:
        return []
    rows = Execution.objects.filter(batch_id=batch_id)
    busy = rows.running().filter(lease_expires_at__gte=now).count()
    free = min(limit, batch.concurrency - busy)
    if free <= 0:
        return []
    candidates = rows.claimable(now).order_by("index").select_for_update(skip_locked=True)
    picked = list(candidates.values(*STALE_FIELDS, "index", "inputs", "status", "auto_retries", "lease_token")[:free])
    stale = [row for row in picked if row["status"] == ExecutionStatus.RUNNING]
    gave_up = interrupt(stale, now, batch_id=batch_id)
    picked = [row for row in picked if row["pk"] not in gave_up]
    token = uuid.uuid4().hex
    Execution.objects.filter(pk__in=[row["pk"] for row in picked]).update(
        status=ExecutionStatus.RUNNING,
        lease_owner=owner,
        lease_token=token,
        lease_expires_at=lease_expiry(now),
        started_at=now,
        not_before=None,
        attempt_count=F("attempt_count") + 1,
        workflow_run_id="",
        task_id="",
    )
    return [_claim_from_row(row, batch, token, now) for row in picked]


def _claim_from_row(row: dict[str, Any], batch: BatchTask, token: str, now: datetime) -> Claim:
    stale = row["status"] == ExecutionStatus.RUNNING
    recovering = stale or row["next_trigger"] == Trigger.RECOVERY
    return Claim(
        execution_id=row["pk"],
        batch_id=batch.pk,
        index=row["index"],
        inputs=row["inputs"],
        token=token,
        number=row["attempt_count"] + 1,
        trigger=Trigger.RECOVERY if stale else row["next_trigger"],
        auto_retries=row["auto_retries"],
        max_retries=batch.max_retries,
        retry_workflow_failed=batch.config.get("retry_workflow_failed", True),
        resume_run_id=row["workflow_run_id"] if recovering else "",
        started_at=now,
    )


def interrupt(stale: list[dict[str, Any]], now: datetime, *, batch_id: int | None = None) -> set[int]:
    """Write the `interrupted` Attempt of each expired row; fail those past the cap. Returns the failed ids.

    The caller holds the rows locked, so each interruption is written exactly once.
    """
    if not stale:
        return set()
    Attempt.objects.bulk_create(_interrupted_attempt(row, now) for row in stale)
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


def _interrupted_attempt(row: dict[str, Any], now: datetime) -> Attempt:
    return Attempt(
        execution_id=row["pk"],
        number=row["attempt_count"],
        trigger=row["next_trigger"],
        started_at=row["started_at"] or now,
        finished_at=now,
        outcome=Attempt.Outcome.INTERRUPTED,
        error_type=ErrorType.INTERRUPTED,
        error="The worker stopped renewing its lease",
        workflow_run_id=row["workflow_run_id"],
    )


# --- while calls are in flight ----------------------------------------------------------------------------------


def renew_leases(owner: str, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return Execution.objects.running().filter(lease_owner=owner).update(lease_expires_at=lease_expiry(now))


@transaction.atomic
def store_run_ids(started: list[tuple[Claim, str, str]]) -> None:
    """Remember upstream ids as soon as a stream announces them, so recovery can ask Dify how the run ended."""
    for claim_, run_id, task_id in started:
        _fenced(claim_).update(workflow_run_id=run_id[:64], task_id=task_id[:64])


def _fenced(claim_: Claim) -> Any:
    return Execution.objects.filter(pk=claim_.execution_id, status=ExecutionStatus.RUNNING, lease_token=claim_.token)


# --- results ----------------------------------------------------------------------------------------------------


def backoff_seconds(retries_used: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.BATCHES_BACKOFF_CAP * 10)
    ceiling = min(settings.BATCHES_BACKOFF_CAP, settings.BATCHES_BACKOFF_BASE * 2**retries_used)
    return random.uniform(0, ceiling)


def next_state(claim_: Claim, result: CallResult) -> ExecutionStatus:
    if result.ok:
        return ExecutionStatus.SUCCEEDED
    retryable = result.error_type in TRANSIENT_ERRORS and (
        result.error_type != ErrorType.WORKFLOW_FAILED or claim_.retry_workflow_failed
    )
    if retryable and claim_.auto_retries < claim_.max_retries:
        return ExecutionStatus.PENDING
    return ExecutionStatus.FAILED


@dataclass
class Recorded:
    written: int = 0
    discarded: int = 0
    batch_ids: set[int] = field(default_factory=set)


@transaction.atomic
def record_results(results: list[tuple[Claim, CallResult]], now: datetime | None = None) -> Recorded:
    """Write each finished call whose lease is still ours, with its Attempt; pause batches the app refuses."""
    now = now or timezone.now()
    recorded, attempts = Recorded(), []
    for claim_, result in results:
        if not _fenced(claim_).update(**_result_changes(claim_, result, now)):
            recorded.discarded += 1
            logger.warning("discarded a late result for execution %s (lease lost)", claim_.execution_id)
            continue
        recorded.written += 1
        recorded.batch_ids.add(claim_.batch_id)
        attempts.append(_attempt(claim_, result, now))
        if result.error_type in PAUSING_ERRORS:
            _pause_for(claim_.batch_id, result)
    Attempt.objects.bulk_create(attempts)
    return recorded


def _result_changes(claim_: Claim, result: CallResult, now: datetime) -> dict[str, Any]:
    state = next_state(claim_, result)
    changes: dict[str, Any] = {
        "status": state,
        "http_status": result.http_status,
        "next_trigger": Trigger.AUTO,
        "workflow_run_id": result.workflow_run_id[:64] or F("workflow_run_id"),
        "task_id": result.task_id[:64] or F("task_id"),
        **NO_LEASE,
    }
    if state == ExecutionStatus.SUCCEEDED:
        changes.update(outputs=result.outputs, error_type="", error="", total_tokens=result.total_tokens)
        changes.update(elapsed=result.elapsed, finished_at=now)
    else:
        changes.update(error_type=result.error_type, error=result.error[:2000])
    if state == ExecutionStatus.PENDING:
        delay = backoff_seconds(claim_.auto_retries, result.retry_after)
        changes.update(not_before=now + timedelta(seconds=delay), auto_retries=F("auto_retries") + 1)
    if state == ExecutionStatus.FAILED:
        changes.update(finished_at=now)
    return changes


def _attempt(claim_: Claim, result: CallResult, now: datetime) -> Attempt:
    return Attempt(
        execution_id=claim_.execution_id,
        number=claim_.number,
        trigger=claim_.trigger,
        started_at=claim_.started_at,
        finished_at=now,
        outcome=Attempt.Outcome.SUCCEEDED if result.ok else Attempt.Outcome.FAILED,
        upstream_status=result.upstream_status[:30],
        error_type=result.error_type,
        error=result.error[:2000],
        http_status=result.http_status,
        workflow_run_id=result.workflow_run_id[:64],
        latency=result.latency,
        total_tokens=result.total_tokens,
    )


def _pause_for(batch_id: int, result: CallResult) -> None:
    reason = f"Paused after {result.error_type}: {result.error}"
    if BatchTask.objects.filter(pk=batch_id, status=BatchStatus.RUNNING).update(
        status=BatchStatus.PAUSED, status_reason=reason[:500]
    ):
        logger.warning("batch %s paused: %s", batch_id, result.error_type)


def finish_done(batch_ids: set[int] | None = None, now: datetime | None = None) -> int:
    """Finish running batches with nothing pending or running (the guard is in the UPDATE itself)."""
    batches = BatchTask.objects.running()
    if batch_ids is not None:
        batches = batches.filter(pk__in=batch_ids)
    unfinished = Execution.objects.filter(batch=OuterRef("pk")).unfinished()
    return batches.filter(~Exists(unfinished)).update(status=BatchStatus.FINISHED, finished_at=now or timezone.now())
