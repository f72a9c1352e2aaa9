"""State changes made by runners: claiming rows under a lease, recording results, renewing leases, sweeping.

Every write is guarded: a claim locks the batch row for its short transaction (so concurrency holds across all
processes), a result is written only while the row's lease token is still the one handed out with the claim, and
the sweep locks the expired rows it resets. No function here touches the network.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Exists, F, Field, OuterRef, Q, Value, When
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
from batches.reconcile import resumable
from batches.services import circuit, clock, nodes, throttle

logger = logging.getLogger(__name__)
NO_LEASE: dict[str, Any] = {"lease_owner": "", "lease_token": "", "lease_expires_at": None}
STALE_FIELDS = ("pk", "attempt_count", "next_trigger", "started_at", "workflow_run_id", "interruptions")


def lease_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.BATCHES_LEASE_SECONDS)


def wake_runners(count: int | None = None) -> None:
    """Enqueue runners (one per slot by default). They are wake-ups only: one that finds no free slot, or no
    work, ends at once."""
    from django_q.tasks import async_task

    for _ in range(settings.BATCHES_RUNNERS if count is None else count):
        async_task("batches.tasks.run_batches", task_name="batches-runner")


def active_runners(now: datetime | None = None) -> int:
    return RunnerSlot.objects.exclude(owner="").filter(expires_at__gte=now or clock.now()).count()


# --- runner slots ---------------------------------------------------------------------------------------------


def acquire_slot(owner: str, now: datetime | None = None) -> int | None:
    now = now or clock.now()
    slots = range(settings.BATCHES_RUNNERS)
    RunnerSlot.objects.bulk_create([RunnerSlot(slot=n) for n in slots], ignore_conflicts=True)
    free = Q(owner="") | Q(expires_at__lt=now)
    for n in slots:
        if RunnerSlot.objects.filter(free, slot=n).update(owner=owner, expires_at=lease_expiry(now)):
            return n
    return _take_over_dead_slot(owner, now)


def _take_over_dead_slot(owner: str, now: datetime) -> int | None:
    """A holder on this machine whose process is gone (SIGKILL) frees its slot now, not when it expires."""
    for slot, holder in RunnerSlot.objects.filter(slot__lt=settings.BATCHES_RUNNERS).values_list("slot", "owner"):
        if nodes.is_dead_local(holder) and RunnerSlot.objects.filter(slot=slot, owner=holder).update(
            owner=owner, expires_at=lease_expiry(now)
        ):
            logger.warning("runner slot %s taken over from %s, whose process is gone", slot, holder)
            return int(slot)
    return None


def renew_slot(slot: int, owner: str, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return bool(RunnerSlot.objects.filter(slot=slot, owner=owner).update(expires_at=lease_expiry(now)))


def release_slot(slot: int, owner: str) -> None:
    RunnerSlot.objects.filter(slot=slot, owner=owner).update(owner="", expires_at=None)


# --- claims ---------------------------------------------------------------------------------------------------


@dataclass
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
    started_at: datetime = field(default_factory=timezone.now)
    adaptive: bool = False  # the workflow had an adaptive limit when this row was claimed
    run_id: str = ""  # set by the runner when the stream announces the upstream run
    task_id: str = ""


def runnable_batches() -> list[BatchTask]:
    return list(BatchTask.objects.running().with_work().select_related("workflow").order_by("pk"))


def has_work() -> bool:
    return BatchTask.objects.running().with_work().exists()


@transaction.atomic
def claim(
    batch_id: int,
    owner: str,
    limit: int,
    now: datetime | None = None,
    *,
    take_over: bool = True,
    ended: Collection[int] = (),
    dead_owners: Collection[str] = (),
) -> list[Claim]:
    """Claim up to `limit` rows of a running batch without exceeding its concurrency or its workflow's limits.

    `take_over` also claims rows whose lease expired, and rows held by `dead_owners` (processes on this machine
    known to be gone, whose rows count as busy no longer); runners ask for that on every poll, not on every claim.
    The caller's own rows are never taken over: their calls may be in flight, or over with results not yet
    written (after a database outage longer than a lease, say).
    `ended`: the caller's rows whose calls are over but whose results are not written yet. They hold no call, so
    a runner can start their successors first and write the results while those are on the network.
    """
    now = now or clock.now()
    _commit_without_waiting_for_the_disk()
    locked = BatchTask.objects.select_for_update(of=("self",)).select_related("workflow__throttle")
    batch = locked.filter(pk=batch_id, status=BatchStatus.RUNNING).first()
    if batch is None:
        return []
    if reason := circuit.down_too_long(batch, now):
        _pause(batch_id, reason)
        return []
    probe = circuit.admits(batch, now)
    if probe == 0:
        return []
    rows = Execution.objects.filter(batch_id=batch_id)
    alive = rows.running().filter(lease_expires_at__gte=now).exclude(lease_owner__in=list(dead_owners))
    busy = alive.exclude(pk__in=ended).count()
    free = min(limit, batch.concurrency - busy, _adaptive_room(batch, ended), limit if probe is None else probe)
    bucket = None
    if free > 0 and batch.workflow.rpm_limit:
        bucket, free = throttle.take_tokens(batch.workflow_id, batch.workflow.rpm_limit, free, now)
    stale = _pick(rows.stale(now, dead_owners).exclude(lease_owner=owner), free) if take_over else []
    gave_up = interrupt(stale, now, batch_id=batch_id)
    picked = [row for row in stale if row["pk"] not in gave_up]
    picked += _pick(rows.due(now), free - len(picked))
    if bucket is not None:
        throttle.give_back(bucket, max(0, free - len(picked)))
    if probe and not picked:
        circuit.probe_not_taken(batch.workflow_id, now)
    token = uuid.uuid4().hex
    _mark_claimed([row["pk"] for row in picked], owner, token, now)
    if gave_up:  # those may have been the batch's last rows
        finish_done({batch_id}, now)
    return [_claim_from_row(row, batch, token, now) for row in picked]


def _mark_claimed(pks: list[int], owner: str, token: str, now: datetime) -> None:
    # A row being recovered keeps its upstream ids: if this try is interrupted too (two restarts in a row), the
    # next claimer can still ask Dify how the first run ended. Other rows start afresh.
    recovering = Q(next_trigger=Trigger.RECOVERY)
    Execution.objects.filter(pk__in=pks).update(
        status=ExecutionStatus.RUNNING,
        lease_owner=owner,
        lease_token=token,
        lease_expires_at=lease_expiry(now),
        started_at=now,
        not_before=None,
        attempt_count=F("attempt_count") + 1,
        workflow_run_id=Case(When(recovering, then=F("workflow_run_id")), default=Value("")),
        task_id=Case(When(recovering, then=F("task_id")), default=Value("")),
    )


def _commit_without_waiting_for_the_disk() -> None:
    """This transaction's commit returns before its WAL is flushed (PostgreSQL), releasing the batch row at once.

    Safe for a claim: if a crash loses it, the row is simply claimed again, and the call it started cannot write
    its result, as the lease token it carries is not in the database. Waiting instead made every runner's claims
    queue behind one slow flush (commits of 0.1-0.3 s measured on this machine's disk). Results are never written
    this way.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _adaptive_room(batch: BatchTask, ended: Collection[int]) -> int:
    if not _is_adaptive(batch):
        return batch.concurrency
    return throttle.adaptive_room(batch.workflow_id, ended) or 0


def _is_adaptive(batch: BatchTask) -> bool:
    limited = getattr(batch.workflow, "throttle", None)
    return limited is not None and limited.concurrency_limit is not None


def _pick(rows: Any, limit: int) -> list[dict[str, Any]]:
    # Two simple queries (expired leases, then due rows) keep each on its index, unlike one OR.
    if limit <= 0:
        return []
    locked = rows.order_by("index").select_for_update(skip_locked=True)
    return list(locked.values(*STALE_FIELDS, "index", "inputs", "status", "auto_retries", "error_type")[:limit])


def _claim_from_row(row: dict[str, Any], batch: BatchTask, token: str, now: datetime) -> Claim:
    stale = row["status"] == ExecutionStatus.RUNNING
    recovering = stale or row["next_trigger"] == Trigger.RECOVERY
    return Claim(
        execution_id=row["pk"],
        batch_id=batch.pk,
        workflow_id=batch.workflow_id,
        index=row["index"],
        inputs=row["inputs"],
        token=token,
        number=row["attempt_count"] + 1,
        trigger=Trigger.RECOVERY if stale else row["next_trigger"],
        auto_retries=row["auto_retries"],
        max_retries=batch.max_retries,
        retry_workflow_failed=batch.config.get("retry_workflow_failed", True),
        resume_run_id=_resume_run_id(row, recovering),
        adaptive=_is_adaptive(batch),
        started_at=now,
    )


def _resume_run_id(row: dict[str, Any], recovering: bool) -> str:
    """The earlier run to ask Dify about first: after an interruption, or a call cut short (timeout, cut stream)."""
    return row["workflow_run_id"] if recovering or resumable(row["error_type"], row["workflow_run_id"]) else ""


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


# --- while calls are in flight ----------------------------------------------------------------------------------


def release_claims(owner: str, now: datetime | None = None) -> int:
    """Hand a stopping runner's rows back to pending at once, as interrupted tries that cost no retry."""
    now = now or clock.now()
    with transaction.atomic():
        rows = Execution.objects.running().filter(lease_owner=owner).order_by().select_for_update(of=("self",))
        mine = list(rows.values(*STALE_FIELDS))
        Attempt.objects.bulk_create(ended_attempt(row, now, "The worker was stopped") for row in mine)
        return Execution.objects.filter(pk__in=[row["pk"] for row in mine]).update(
            status=ExecutionStatus.PENDING, next_trigger=Trigger.RECOVERY, **NO_LEASE
        )


def lost_claims(owner: str, execution_ids: list[int]) -> list[int]:
    """Of the rows a runner is calling for, those it no longer holds (cancelled, or taken over)."""
    held = Execution.objects.running().filter(pk__in=execution_ids, lease_owner=owner).values_list("pk", flat=True)
    return sorted(set(execution_ids) - set(held))


def renew_leases(owner: str, now: datetime | None = None) -> int:
    now = now or clock.now()
    return Execution.objects.running().filter(lease_owner=owner).update(lease_expires_at=lease_expiry(now))


def store_run_ids(started: list[Claim]) -> None:
    """Remember upstream ids announced by streams, so recovery can ask Dify how an interrupted run ended."""
    _update_fenced(
        ["workflow_run_id", "task_id"], [(c, {"workflow_run_id": c.run_id, "task_id": c.task_id}) for c in started]
    )


# --- results ----------------------------------------------------------------------------------------------------


def backoff_seconds(retries_used: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.BATCHES_BACKOFF_CAP * 10)
    ceiling = min(settings.BATCHES_BACKOFF_CAP, settings.BATCHES_BACKOFF_BASE * 2**retries_used)
    return random.uniform(0, ceiling)


def next_state(claim_: Claim, result: CallResult) -> ExecutionStatus:
    if result.ok:
        return ExecutionStatus.SUCCEEDED
    retryable = (
        result.error_type in TRANSIENT_ERRORS
        and not result.final  # a run stopped in Dify: running it again pays again for the same end
        and (result.error_type != ErrorType.WORKFLOW_FAILED or claim_.retry_workflow_failed)
    )
    if retryable and claim_.auto_retries < claim_.max_retries:
        return ExecutionStatus.PENDING
    return ExecutionStatus.FAILED


@dataclass
class Recorded:
    written: int = 0
    discarded: int = 0
    batch_ids: set[int] = field(default_factory=set)


RESULT_FIELDS = [
    "status",
    "outputs",
    "error_type",
    "error",
    "http_status",
    "auto_retries",
    "next_trigger",
    "not_before",
    "workflow_run_id",
    "task_id",
    "total_tokens",
    "elapsed",
    "finished_at",
    *NO_LEASE,
]


@transaction.atomic
def record_results(results: list[tuple[Claim, CallResult]], now: datetime | None = None) -> Recorded:
    """Write each finished call whose lease is still ours, with its Attempt; pause batches the app refuses."""
    now = now or clock.now()
    ours = _still_ours([claim_ for claim_, _ in results])
    recorded, rows, attempts = Recorded(), [], []
    outage = circuit.observe([(c, r) for c, r in results if (c.execution_id, c.token) in ours], now)
    for claim_, result in results:
        if (claim_.execution_id, claim_.token) not in ours:
            recorded.discarded += 1
            logger.warning("discarded a late result for execution %s (lease lost)", claim_.execution_id)
            continue
        during_outage = claim_.execution_id in outage
        rows.append((claim_, _result_values(claim_, result, now, during_outage=during_outage)))
        attempts.append(_attempt(claim_, result, now, during_outage=during_outage))
        recorded.batch_ids.add(claim_.batch_id)
        if result.error_type in PAUSING_ERRORS:
            _pause_for(claim_.batch_id, result)
    _write_results(rows)
    Attempt.objects.bulk_create(attempts)
    recorded.written = len(rows)
    failing = {c.batch_id for c, values in rows if values["status"] == ExecutionStatus.FAILED}
    for batch_id in failing:
        _pause_if_failing_too_much(batch_id)
    written = {claim_.execution_id for claim_, _ in rows}
    _adapt([(claim_, result) for claim_, result in results if claim_.execution_id in written], now)
    return recorded


def _write_results(rows: list[tuple[Claim, dict[str, Any]]]) -> None:
    _update_fenced(RESULT_FIELDS, rows)


def _update_fenced(names: list[str], rows: list[tuple[Claim, dict[str, Any]]]) -> None:
    """One parameterised UPDATE run for many rows (psycopg pipelines it), each guarded by its lease token.

    The hot path of every runner: Django's bulk_update builds a CASE per field and row, which costs more CPU than
    the calls themselves. Only column names (from the model) are formatted into the SQL.
    """
    if not rows:
        return
    fields = [_concrete_field(name) for name in names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(Execution._meta.db_table)} SET {assignments} WHERE id = %s AND lease_token = %s"  # noqa: S608
    params = [[field.get_db_prep_save(values[field.name], connection) for field in fields] for _, values in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, [p + [c.execution_id, c.token] for p, (c, _) in zip(params, rows, strict=True)])


def _concrete_field(name: str) -> Field[Any, Any]:
    field = Execution._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _still_ours(claims: list[Claim]) -> set[tuple[int, str]]:
    """Lock the rows and keep those whose lease token is still the one handed out (the fencing check)."""
    # Only the executions: their default ordering joins the batch, which a bare FOR UPDATE would lock as well,
    # making every write of results wait for (and block) the claims of all runners.
    rows = Execution.objects.running().filter(pk__in=[c.execution_id for c in claims]).order_by()
    return set(rows.select_for_update(of=("self",)).values_list("pk", "lease_token"))


def _result_values(claim_: Claim, result: CallResult, now: datetime, *, during_outage: bool = False) -> dict[str, Any]:
    # A failure during an upstream outage says nothing about the row: back to pending, no retry spent, and no
    # backoff of its own (the circuit holds every row of the workflow until a probe answers).
    state = ExecutionStatus.PENDING if during_outage else next_state(claim_, result)
    values: dict[str, Any] = {
        "status": state,
        "outputs": result.outputs if result.ok else None,
        "error_type": result.error_type,
        "error": result.error[:2000],
        "http_status": result.http_status,
        "auto_retries": claim_.auto_retries,
        "next_trigger": Trigger.AUTO,
        "not_before": None,
        "workflow_run_id": (result.workflow_run_id or claim_.run_id)[:64],
        "task_id": (result.task_id or claim_.task_id)[:64],
        "total_tokens": result.total_tokens,
        "elapsed": result.elapsed,
        "finished_at": None if state == ExecutionStatus.PENDING else now,
        **NO_LEASE,
    }
    if state == ExecutionStatus.PENDING and not during_outage:
        delay = backoff_seconds(claim_.auto_retries, result.retry_after)
        values.update(not_before=now + timedelta(seconds=delay), auto_retries=claim_.auto_retries + 1)
    return values


def _attempt(claim_: Claim, result: CallResult, now: datetime, *, during_outage: bool = False) -> Attempt:
    return Attempt(
        during_outage=during_outage,
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
    _pause(batch_id, f"Paused after {result.error_type}: {result.error}")


def _pause(batch_id: int, reason: str) -> None:
    if BatchTask.objects.filter(pk=batch_id, status=BatchStatus.RUNNING).update(
        status=BatchStatus.PAUSED, status_reason=reason[:500]
    ):
        logger.warning("batch %s paused: %s", batch_id, reason)


def _adapt(results: list[tuple[Claim, CallResult]], now: datetime) -> None:
    """Feed each workflow's adaptive limit: 429s shrink it, successes grow it back."""
    limited = Counter(c.workflow_id for c, r in results if r.error_type == ErrorType.RATE_LIMITED)
    for workflow_id in limited:
        running = Execution.objects.running().filter(batch__workflow_id=workflow_id).count()
        throttle.rate_limited(workflow_id, running + limited[workflow_id], running, now)
    for workflow_id, count in Counter(c.workflow_id for c, r in results if r.ok and c.adaptive).items():
        if workflow_id not in limited:
            throttle.succeeded(workflow_id, count)


def _pause_if_failing_too_much(batch_id: int) -> None:
    """The batch's tolerated-failure setting: pause when failures pass N % after at least M finished rows."""
    batch = BatchTask.objects.only("failure_threshold", "failure_threshold_min_rows").get(pk=batch_id)
    if batch.failure_threshold is None:
        return
    rows = Execution.objects.filter(batch_id=batch_id)
    done = rows.filter(status__in=[ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED]).count()
    failed = rows.failed().count()
    if done >= batch.failure_threshold_min_rows and failed * 100 > batch.failure_threshold * done:
        _pause(batch_id, f"Paused: {failed} of {done} finished rows failed (threshold {batch.failure_threshold}%)")


@transaction.atomic
def finish_done(batch_ids: Collection[int] | None = None, now: datetime | None = None) -> int:
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
    unfinished = Execution.objects.filter(batch=OuterRef("pk")).unfinished()
    done = BatchTask.objects.filter(pk__in=locked).filter(~Exists(unfinished))
    return done.update(status=BatchStatus.FINISHED, finished_at=now or clock.now())
