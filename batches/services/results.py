"""Recording a call's result: where automatic retry and backoff live.

A result is written only while the row's lease token is the one handed out with its claim (a late result of a
row taken over is discarded). `next_state` decides: success; a transient failure (choices.TRANSIENT_ERRORS, as
classified by dify/errors.py) with automatic retries left goes back to pending after an exponential backoff with
jitter (`backoff_seconds`, or the upstream's Retry-After); anything else fails. A failure during an upstream
outage costs no retry (services/circuit.py). An error the whole app shares (auth, app_error) pauses the batch,
as does a failure rate over the batch's threshold, or first rows that all failed alike (services/fail_fast.py).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from batches.choices import PAUSING_ERRORS, TRANSIENT_ERRORS, ErrorType, ExecutionStatus, Trigger
from batches.conf import settings
from batches.db import clock
from batches.dify.types import CallResult
from batches.models import Attempt, BatchTask, Execution
from batches.services import circuit, fail_fast, throttle
from batches.services.leases import NO_LEASE, Claim, update_fenced
from batches.services.transitions import pause

logger = logging.getLogger(__name__)


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
    "next_trigger",
    "not_before",
    "workflow_run_id",
    "task_id",
    "total_tokens",
    "elapsed",
    "latency",
    "price",
    "currency",
    "finished_at",
    *NO_LEASE,
]


@transaction.atomic
def record_results(results: list[tuple[Claim, CallResult]], *, now: datetime | None = None) -> Recorded:
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
        fail_fast.pause_if_only_failing(batch_id)
    written = {claim_.execution_id for claim_, _ in rows}
    _adapt([(claim_, result) for claim_, result in results if claim_.execution_id in written], now)
    return recorded


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


def backoff_seconds(retries_used: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.BATCHES_BACKOFF_CAP * 10)
    ceiling = min(settings.BATCHES_BACKOFF_CAP, settings.BATCHES_BACKOFF_BASE * 2**retries_used)
    return random.uniform(0, ceiling)


def _write_results(rows: list[tuple[Claim, dict[str, Any]]]) -> None:
    update_fenced(RESULT_FIELDS, rows, added=["auto_retries"])


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
        "auto_retries": 0,  # retries this try spends, added to the row's: an outage may have refunded some meanwhile
        "next_trigger": Trigger.AUTO,
        "not_before": None,
        # Never "": a try that announced no run (a failed look-up, a refused call) leaves the row's latest run to
        # be looked up before the next one pays (batches/runner/reconcile.py).
        "workflow_run_id": (result.workflow_run_id or claim_.run_id or claim_.resume_run_id)[:64],
        "task_id": (result.task_id or claim_.task_id)[:64],
        "total_tokens": result.total_tokens,
        "elapsed": result.elapsed,
        "latency": result.latency if result.ok else None,
        "price": Decimal(result.price) if result.ok and result.price else None,
        "currency": result.currency if result.ok else "",
        "finished_at": None if state == ExecutionStatus.PENDING else now,
        **NO_LEASE,
    }
    if state == ExecutionStatus.PENDING and not during_outage:
        delay = backoff_seconds(claim_.auto_retries, result.retry_after)
        values.update(not_before=now + timedelta(seconds=delay), auto_retries=1)
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
    pause(batch_id, reason=f"Paused after {result.error_type}: {result.error}")


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
        pause(
            batch_id, reason=f"Paused: {failed} of {done} finished rows failed (threshold {batch.failure_threshold}%)"
        )
