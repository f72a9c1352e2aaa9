"""Claims: which rows a runner may call for now, taken under a lease with a fencing token.

A claim locks the batch row for its short transaction, so the batch's concurrency holds across every process on
every machine; it respects the workflow's rpm bucket and adaptive limit (services/throttle.py) and its upstream
circuit (services/circuit.py). Each claim with `take_over` also takes over rows whose lease expired or whose holder
died on this machine (services/leases.py): this, on every runner poll, is how a dead worker's rows are picked up
within a lease. Runner slots bound how many runners work at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django_q.tasks import async_task

from batches.choices import RUN_ENDED_ERRORS, BatchStatus, ExecutionStatus, Trigger
from batches.cluster import nodes
from batches.conf import settings
from batches.db import clock
from batches.models import BatchTask, Execution, RunnerSlot
from batches.models.batches import ExecutionQuerySet
from batches.services import circuit, refills, throttle
from batches.services.leases import STALE_FIELDS, Claim, interrupt, lease_expiry
from batches.services.transitions import finish_done, pause

logger = logging.getLogger(__name__)


def wake_runners(*, count: int | None = None) -> None:
    """Enqueue runners (one per slot by default). They are wake-ups only: one that finds no free slot, or no
    work, ends at once."""
    for _ in range(settings.BATCHES_RUNNERS if count is None else count):
        async_task("batches.tasks.run_batches", task_name="batches-runner")


def runnable_batches() -> list[BatchTask]:
    return list(BatchTask.objects.running().with_work().select_related("workflow").order_by("pk"))


def has_work() -> bool:
    return BatchTask.objects.running().with_work().exists()


def claim(
    batch_id: int,
    *,
    owner: str,
    limit: int,
    now: datetime | None = None,
    take_over: bool = True,
    ended: Collection[int] = (),
    dead_owners: Collection[str] = (),
) -> list[Claim]:
    """Claim up to `limit` rows of a running batch without exceeding its concurrency or its workflow's limits.

    `take_over` also claims rows whose lease expired, and rows held by `dead_owners` (processes on this machine
    known to be gone, whose rows count as busy no longer); runners ask for that on every poll, not on every claim.
    The caller's own rows are never taken over: their calls may be in flight, or over with results not yet
    written (after a database outage longer than a lease, say).
    `ended`: the caller's rows whose calls are over, results not written yet. They hold no call: they are marked
    so (`_mark_ended`), and every runner's claim refills their places while the results are being written.
    """
    now = now or clock.now()
    # A take-over that finds nothing to take over is a refill too: it need not queue for the exclusive claim.
    if not _refills_only(limit, ended) or (take_over and _stale_of_others(batch_id, owner, now, dead_owners).exists()):
        return _claim_exclusive(batch_id, owner, limit, now, take_over, ended, dead_owners)
    got = _refill(batch_id, owner=owner, limit=limit, now=now, ended=ended)
    if len(got) == limit:
        return got
    # The rest (a throttled batch, a batch no longer running, no due row left) is the exclusive claim's to decide.
    try:
        return got + _claim_exclusive(batch_id, owner, limit - len(got), now, take_over, ended, dead_owners)
    except DatabaseError as exc:
        if not got:
            raise
        # The refilled rows are committed as this runner's: they must reach its calls, or they would idle under
        # leases it keeps renewing.
        logger.warning("batch %s: claimed %s rows, the rest of the claim failed (%s)", batch_id, len(got), exc)
        return got


def _refill(batch_id: int, *, owner: str, limit: int, now: datetime, ended: Collection[int]) -> list[Claim]:
    token = uuid.uuid4().hex
    rows, batch = refills.refill(
        batch_id, owner=owner, limit=limit, now=now, ended=ended, token=token, expires=lease_expiry(now)
    )
    return [_claim_from_row(row, batch, token, now, adaptive=False) for row in rows] if batch else []


@transaction.atomic
def _claim_exclusive(
    batch_id: int,
    owner: str,
    limit: int,
    now: datetime,
    take_over: bool,
    ended: Collection[int],
    dead_owners: Collection[str],
) -> list[Claim]:
    """The claim that may add calls: under the batch row's exclusive lock, one claim of the batch at a time."""
    _commit_without_waiting_for_the_disk()
    batch = _running_locked(batch_id, now, ended, owner)
    if batch is None or not circuit.admits(batch):
        return []
    free = min(limit, _free_places(batch, now, dead_owners))
    bucket = None
    if free > 0 and batch.workflow.rpm_limit:
        bucket, free = throttle.take_tokens(batch.workflow_id, batch.workflow.rpm_limit, free, now)
    picked, gave_up = _pick_rows(batch_id, owner, free, now, dead_owners if take_over else None)
    if bucket is not None:
        throttle.give_back(bucket, max(0, free - len(picked)))
    if gave_up:  # those may have been the batch's last rows
        finish_done({batch_id}, now=now)
    return _claimed(picked, batch, owner, now)


def _refills_only(limit: int, ended: Collection[int]) -> bool:
    """A claim that at most replaces the caller's own ended calls adds no call: see services/refills.py."""
    return connection.vendor in refills.VENDORS and 0 < limit <= len(ended)


def _stale_of_others(batch_id: int, owner: str, now: datetime, dead_owners: Collection[str]) -> ExecutionQuerySet:
    """What a take-over takes: others' rows whose lease expired or whose holder is dead (never the caller's own)."""
    return Execution.objects.filter(batch_id=batch_id).stale(now, dead_owners).exclude(lease_owner=owner)


def _claimed(picked: list[dict[str, Any]], batch: BatchTask, owner: str, now: datetime) -> list[Claim]:
    token = uuid.uuid4().hex
    _mark_claimed([row["pk"] for row in picked], owner, token, now)
    return [_claim_from_row(row, batch, token, now, adaptive=_is_adaptive(batch)) for row in picked]


def _running_locked(batch_id: int, now: datetime, ended: Collection[int], owner: str) -> BatchTask | None:
    """The batch, its row locked, if it is running and its upstream has not been down too long (else it pauses)."""
    locked = BatchTask.objects.select_for_update(of=("self",)).select_related("workflow__throttle")
    batch = locked.filter(pk=batch_id, status=BatchStatus.RUNNING).first()
    if batch is not None:
        _mark_ended(ended, owner, now)
    if batch is not None and (reason := circuit.down_too_long(batch, now)):
        pause(batch_id, reason=reason)
        return None
    return batch


def _free_places(batch: BatchTask, now: datetime, dead_owners: Collection[str]) -> int:
    """Calls the batch may start now: its concurrency (or the workflow's adaptive limit) less its live rows that
    hold a call (a row marked as ended holds none)."""
    rows = Execution.objects.filter(batch_id=batch.pk).running().filter(lease_expires_at__gte=now)
    busy = rows.exclude(lease_owner__in=list(dead_owners)).filter(not_before__isnull=True).count()
    return min(batch.concurrency - busy, _adaptive_room(batch))


def _mark_ended(ended: Collection[int], owner: str, now: datetime) -> None:
    """Mark the caller's rows whose calls are over: a running row with `not_before` set holds no call.

    Under the batch row's lock, like every claim: a claim that comes after this one, from any runner, sees these
    places free, even before the results are written. Without the mark, only their own runner knew: another
    runner's claim that ran between this claim and the writing of these results found the batch full (these rows,
    and their successors) and left its own freed places empty until its next poll. `not_before` is otherwise
    unset on a running row (a claim clears it), and where a mark outlives the call's runner (a crash, a hand-back)
    it is in the past, so the row is due at once once it is pending again.
    """
    if ended:
        Execution.objects.running().filter(pk__in=list(ended), lease_owner=owner).update(not_before=now)


def _pick_rows(
    batch_id: int, owner: str, free: int, now: datetime, dead_owners: Collection[str] | None
) -> tuple[list[dict[str, Any]], set[int]]:
    """Rows to claim, locked: interrupted ones first when taking over (`dead_owners` not None), then due ones.
    Returns them and the interrupted rows that failed instead (past the interruption cap)."""
    stale = [] if dead_owners is None else _pick(_stale_of_others(batch_id, owner, now, dead_owners), free)
    gave_up = interrupt(stale, now, batch_id=batch_id)
    picked = [row for row in stale if row["pk"] not in gave_up]
    return picked + _pick(Execution.objects.filter(batch_id=batch_id).due(now), free - len(picked)), gave_up


def _mark_claimed(pks: list[int], owner: str, token: str, now: datetime) -> None:
    # A row keeps its latest run id until this try's call announces its own: if this try is interrupted too (in
    # its look-up, or before a new run started), the next claimer still asks Dify how that run ended. A row being
    # recovered keeps its task id as well; others start afresh.
    recovering = Q(next_trigger=Trigger.RECOVERY)
    Execution.objects.filter(pk__in=pks).update(
        status=ExecutionStatus.RUNNING,
        lease_owner=owner,
        lease_token=token,
        lease_expires_at=lease_expiry(now),
        started_at=now,
        not_before=None,
        attempt_count=F("attempt_count") + 1,
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


def _adaptive_room(batch: BatchTask) -> int:
    if not _is_adaptive(batch):
        return batch.concurrency
    return throttle.adaptive_room(batch.workflow_id) or 0


def _is_adaptive(batch: BatchTask) -> bool:
    limited = getattr(batch.workflow, "throttle", None)
    return limited is not None and limited.concurrency_limit is not None


def _pick(rows: Any, limit: int) -> list[dict[str, Any]]:
    # Two simple queries (expired leases, then due rows) keep each on its index, unlike one OR.
    if limit <= 0:
        return []
    locked = rows.order_by("index").select_for_update(skip_locked=True)
    return list(locked.values(*STALE_FIELDS, "index", "inputs", "status", "auto_retries", "error_type")[:limit])


def _claim_from_row(row: dict[str, Any], batch: BatchTask, token: str, now: datetime, *, adaptive: bool) -> Claim:
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
        run_id=row["workflow_run_id"],
        adaptive=adaptive,
        started_at=now,
    )


def _resume_run_id(row: dict[str, Any], recovering: bool) -> str:
    """The earlier run to ask Dify about first: after an interruption, or any try that did not see it end."""
    return row["workflow_run_id"] if recovering or resumable(row["error_type"], row["workflow_run_id"]) else ""


def resumable(error_type: str, run_id: str) -> bool:
    """Whether a try should look up the row's latest run first (its id is known, its end was not seen; see
    batches/runner/reconcile.py)."""
    return bool(run_id) and error_type not in RUN_ENDED_ERRORS


# --- runner slots ---------------------------------------------------------------------------------------------


def active_runners(*, now: datetime | None = None) -> int:
    return RunnerSlot.objects.held(now or clock.now()).count()


def acquire_slot(owner: str, *, now: datetime | None = None) -> int | None:
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


def renew_slot(slot: int, *, owner: str, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return bool(RunnerSlot.objects.filter(slot=slot, owner=owner).update(expires_at=lease_expiry(now)))


def release_slot(slot: int, *, owner: str) -> None:
    RunnerSlot.objects.filter(slot=slot, owner=owner).update(owner="", expires_at=None)
