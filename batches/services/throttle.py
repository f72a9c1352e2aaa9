"""What every process shares about one workflow's upstream, in its WorkflowThrottle row: an rpm token bucket, an
adaptive (AIMD) concurrency limit, and the upstream circuit.

The row is locked only inside a claim's short transaction (after the batch row, always in that order), in the
transaction that records results, or for one update after a flush of results that saw 429s.

The upstream circuit:

- `closed`: normal. Outage-class failures (connection, timeout, upstream_error) count up a streak; any answer
  from Dify (a success, a 429, a 4xx about the row, a failed run) resets it. BATCHES_CIRCUIT_FAILURES failures in
  a row open the circuit. A flaky upstream with 10 % random 5xx answers does not: 5 in a row by chance is a
  1-in-100,000 event.
- `open`: Dify is considered down; claims take no rows of the workflow. When `next_probe_at` passes, the next claim
  takes one row as the probe and the circuit is `half_open` until the probe's answer.
- `half_open`: exactly one probe call in flight across all processes (the throttle row is locked by the claim that
  takes it). Any answer from Dify closes the circuit; an outage-class failure of the probe reopens it with twice
  the wait (BATCHES_CIRCUIT_PROBE_MIN doubling to BATCHES_CIRCUIT_PROBE_MAX, with jitter).

A failure that opens the circuit, or comes while it is open or half open, costs its row no automatic retry: the row
goes back to pending and its Attempt is marked as during an outage; when the circuit opens, the failures of the
streak that opened it get their retries back too. Only failures while Dify otherwise answers
spend a row's retries, so a row with a problem of its own still fails.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Greatest, Least

from batches.choices import ANSWERED_ERRORS, OUTAGE_ERRORS
from batches.models import Attempt, BatchTask, CircuitState, Execution, ExecutionStatus, Trigger, WorkflowThrottle
from batches.selectors import Upstream, upstream_of
from batches.services import clock
from batches.services.leases import lease_expiry

if TYPE_CHECKING:
    from batches.dify.types import CallResult
    from batches.services.claims import Claim

logger = logging.getLogger(__name__)
DECREASE_EVERY = timedelta(seconds=1)  # one wave of 429s halves the limit once, not once per answer
FORGET_PAST = 2  # times the level of the last 429s: past it, the adaptive limit is dropped
CIRCUIT_FIELDS = [
    "circuit",
    "circuit_since",
    "outage_streak",
    "streak_since",
    "last_error",
    "next_probe_at",
    "probe_backoff",
    "probe_expires_at",
]


# --- rpm bucket and adaptive limit ------------------------------------------------------------------------------


def _locked(workflow_id: int, now: datetime, tokens: float = 0) -> WorkflowThrottle:
    WorkflowThrottle.objects.get_or_create(workflow_id=workflow_id, defaults={"refilled_at": now, "tokens": tokens})
    return WorkflowThrottle.objects.select_for_update().get(workflow_id=workflow_id)


def take_tokens(workflow_id: int, rpm: int, wanted: int, now: datetime) -> tuple[WorkflowThrottle, int]:
    """Refill the bucket (at most one second's worth banked) and take up to `wanted` tokens."""
    per_second = rpm / 60
    throttle = _locked(workflow_id, now, tokens=max(1.0, per_second))  # a new bucket starts full
    elapsed = max(0.0, (now - throttle.refilled_at).total_seconds())
    throttle.tokens = min(max(1.0, per_second), throttle.tokens + elapsed * per_second)
    throttle.refilled_at = now
    granted = min(wanted, math.floor(throttle.tokens))
    throttle.tokens -= granted
    return throttle, granted


def give_back(throttle: WorkflowThrottle, unused: int) -> None:
    throttle.tokens += unused
    throttle.save(update_fields=["tokens", "refilled_at"])


def adaptive_room(workflow_id: int) -> int | None:
    """Calls the workflow may still start under its adaptive limit, or None when no 429 has set one.

    Running rows marked as ended (`not_before` set, see claims.claim) hold no call.
    """
    limit = WorkflowThrottle.objects.filter(workflow_id=workflow_id).values_list("concurrency_limit", flat=True)
    current = limit.first()
    if current is None:
        return None
    busy = Execution.objects.running().filter(batch__workflow_id=workflow_id, not_before__isnull=True).count()
    return max(0, math.floor(current) - busy)


def rate_limited(workflow_id: int, in_flight: int, still_running: int, now: datetime) -> None:
    """Multiplicative decrease to half of what was in flight, at most once a second; in between, the limit
    only drops to what is still running, so the slots the 429s freed are not refilled with more 429s."""
    WorkflowThrottle.objects.get_or_create(workflow_id=workflow_id, defaults={"refilled_at": now})
    throttles = WorkflowThrottle.objects.filter(workflow_id=workflow_id)
    recent = now - DECREASE_EVERY
    if not throttles.exclude(decreased_at__gt=recent).update(
        concurrency_limit=max(1.0, in_flight / 2), ceiling=float(in_flight), decreased_at=now
    ):
        throttles.update(concurrency_limit=Least(F("concurrency_limit"), float(max(1, still_running))))


def succeeded(workflow_id: int, count: int) -> None:
    """Additive increase: about one more call in flight per limit's worth of successes, eight times slower
    within one call either side of the level where the last 429s came (so the sawtooth rarely touches the cap),
    at the usual pace again past it. Once twice that level passes without a 429, the limit is forgotten: it no
    longer limits anything, and the workflow's later batches must not inherit it."""
    limited = WorkflowThrottle.objects.filter(workflow_id=workflow_id, concurrency_limit__isnull=False)
    near_ceiling = Q(
        ceiling__isnull=False, concurrency_limit__gte=F("ceiling") - 1, concurrency_limit__lt=F("ceiling") + 1
    )
    slow = F("concurrency_limit") + float(count) / (8 * F("concurrency_limit"))
    usual = Least(F("concurrency_limit") + float(count) / F("concurrency_limit"), 100_000.0)
    limited.update(concurrency_limit=Case(When(near_ceiling, then=slow), default=usual))
    limited.filter(concurrency_limit__gt=F("ceiling") * FORGET_PAST).update(concurrency_limit=None, ceiling=None)


# --- the upstream circuit, inside a claim -----------------------------------------------------------------------


def admits(batch: BatchTask, now: datetime) -> int | None:
    """How many rows a claim may take under the batch's workflow circuit: None (no limit), 0, or 1 (the probe).

    Runs inside the claim's transaction with the batch row locked; `batch.workflow.throttle` was read with it, so
    a closed circuit costs no query. Taking the probe locks the throttle row, so there is one probe at a time.
    """
    seen = getattr(batch.workflow, "throttle", None)
    if seen is None or seen.circuit == CircuitState.CLOSED:
        return None
    throttle = WorkflowThrottle.objects.select_for_update().get(pk=batch.workflow_id)
    if throttle.circuit == CircuitState.CLOSED:
        return None
    if throttle.circuit == CircuitState.HALF_OPEN and throttle.probe_expires_at and throttle.probe_expires_at > now:
        return 0
    if throttle.circuit == CircuitState.OPEN and throttle.next_probe_at and throttle.next_probe_at > now:
        return 0
    throttle.circuit, throttle.probe_expires_at = CircuitState.HALF_OPEN, lease_expiry(now)
    throttle.save(update_fields=["circuit", "probe_expires_at"])
    logger.info("workflow %s: probing the upstream with one row", batch.workflow_id)
    return 1


def probe_not_taken(workflow_id: int, now: datetime) -> None:
    """The claim that was granted the probe found no row to send: let the next claim (any batch's) take it."""
    WorkflowThrottle.objects.filter(workflow_id=workflow_id, circuit=CircuitState.HALF_OPEN).update(
        circuit=CircuitState.OPEN, next_probe_at=now, probe_expires_at=None
    )


def down_too_long(batch: BatchTask, now: datetime) -> str:
    """The reason to pause a batch whose upstream has been down past BATCHES_OUTAGE_PAUSE_MINUTES (0: never)."""
    minutes = settings.BATCHES_OUTAGE_PAUSE_MINUTES
    upstream = upstream_of(getattr(batch.workflow, "throttle", None))
    if not minutes or not upstream.waiting or not upstream.since:
        return ""
    if upstream.since > now - timedelta(minutes=minutes):
        return ""
    return f"Paused: Dify has been unreachable since {upstream.since:%Y-%m-%d %H:%M} UTC ({upstream.last_error})"


# --- the upstream circuit, when results are recorded ------------------------------------------------------------


def observe(results: list[tuple[Claim, CallResult]], now: datetime) -> set[int]:
    """Feed each workflow's circuit with these results, in order; return the rows whose failure cost no retry.

    Runs in the transaction that records the results. A batch of results with no outage-class failure costs one
    query (finding no circuit to reset); others lock the workflow's throttle row.
    """
    refunded: set[int] = set()
    by_workflow: dict[int, list[tuple[Claim, CallResult]]] = {}
    for claim_, result in results:
        by_workflow.setdefault(claim_.workflow_id, []).append((claim_, result))
    for workflow_id, outcomes in by_workflow.items():
        refunded |= _observe_workflow(workflow_id, outcomes, now)
    return refunded


def _observe_workflow(workflow_id: int, outcomes: list[tuple[Claim, CallResult]], now: datetime) -> set[int]:
    down = any(result.error_type in OUTAGE_ERRORS for _, result in outcomes)
    if down:
        WorkflowThrottle.objects.get_or_create(workflow_id=workflow_id, defaults={"refilled_at": now})
    dirty = WorkflowThrottle.objects.filter(workflow_id=workflow_id).select_for_update()
    if not down:  # only answers: something to do only if a streak or an open circuit is there to reset
        dirty = dirty.exclude(circuit=CircuitState.CLOSED, outage_streak=0)
    throttle = dirty.first()
    if throttle is None:
        return set()
    before = (throttle.circuit, throttle.outage_streak)
    refunded = {claim_.execution_id for claim_, result in outcomes if _feed(throttle, claim_, result, now)}
    if before[0] == CircuitState.CLOSED and throttle.circuit != CircuitState.CLOSED:
        refunded |= _refund_the_streak(throttle, outcomes)
    if (throttle.circuit, throttle.outage_streak) != before or refunded:
        throttle.save(update_fields=CIRCUIT_FIELDS)
    return refunded


def _refund_the_streak(throttle: WorkflowThrottle, outcomes: list[tuple[Claim, CallResult]]) -> set[int]:
    """The circuit just opened: the failures that led to it were the outage too, so their rows get their
    automatic retries back (those recorded earlier now; those of this flush through the returned ids).

    A row claimed again since (its backoff drawn close to 0) is running: it gets them back too, as its result adds
    only what its own try spends (services/results.py adds it to the row's count)."""
    since = throttle.streak_since
    earlier = Attempt.objects.filter(
        execution__batch__workflow_id=throttle.workflow_id,
        execution__status__in=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING],
        trigger=Trigger.AUTO,
        outcome=Attempt.Outcome.FAILED,
        error_type__in=OUTAGE_ERRORS,
        during_outage=False,
        started_at__gte=since,
    )
    spent = Counter(earlier.values_list("execution_id", flat=True))
    earlier.update(during_outage=True)
    for times in set(spent.values()):
        rows = [execution_id for execution_id, count in spent.items() if count == times]
        Execution.objects.filter(pk__in=rows).update(auto_retries=Greatest(F("auto_retries") - times, 0))
    return {c.execution_id for c, r in outcomes if r.error_type in OUTAGE_ERRORS and since and c.started_at >= since}


def _feed(throttle: WorkflowThrottle, claim_: Claim, result: CallResult, now: datetime) -> bool:
    """Move the circuit for one result; True if the result's row should not pay for its failure."""
    if result.ok or result.error_type in ANSWERED_ERRORS:
        if _news(throttle, claim_):
            _close(throttle, now)
        return False
    if result.error_type not in OUTAGE_ERRORS:
        return False
    throttle.outage_streak += 1
    throttle.streak_since = min(throttle.streak_since or claim_.started_at, claim_.started_at)
    throttle.last_error = describe(result)
    if throttle.circuit == CircuitState.CLOSED and throttle.outage_streak >= settings.BATCHES_CIRCUIT_FAILURES:
        _open(throttle, now, settings.BATCHES_CIRCUIT_PROBE_MIN)
    elif throttle.circuit == CircuitState.HALF_OPEN:
        _open(throttle, now, min(settings.BATCHES_CIRCUIT_PROBE_MAX, 2 * throttle.probe_backoff))
    return throttle.circuit != CircuitState.CLOSED


def _news(throttle: WorkflowThrottle, claim_: Claim) -> bool:
    """Whether an answer says the upstream answers now. A call that was already under way before the failing ones
    were sent (or, once open, before the circuit opened: a slow success finishing during the outage) is old news."""
    if throttle.circuit != CircuitState.CLOSED:
        return throttle.circuit_since is None or claim_.started_at > throttle.circuit_since
    return throttle.streak_since is None or claim_.started_at >= throttle.streak_since


def describe(result: CallResult) -> str:
    status = f"HTTP {result.http_status} " if result.http_status else ""
    return f"{status}{result.error_type}: {result.error}"[:300]


def _open(throttle: WorkflowThrottle, now: datetime, backoff: float) -> None:
    if throttle.circuit == CircuitState.CLOSED:
        throttle.circuit_since = now
        logger.warning(
            "workflow %s: upstream down after %s failures in a row (%s); no new calls until a probe answers",
            throttle.workflow_id,
            throttle.outage_streak,
            throttle.last_error,
        )
    throttle.circuit, throttle.probe_backoff, throttle.probe_expires_at = CircuitState.OPEN, backoff, None
    throttle.next_probe_at = now + timedelta(seconds=backoff * random.uniform(0.8, 1.2))


def _close(throttle: WorkflowThrottle, now: datetime) -> None:
    """Dify answers: the streak is over, and the circuit closes if it was open."""
    if throttle.circuit != CircuitState.CLOSED:
        since = throttle.circuit_since or now
        logger.warning(
            "workflow %s: upstream answers again after %.0f s down", throttle.workflow_id, _seconds(since, now)
        )
    throttle.circuit, throttle.circuit_since, throttle.next_probe_at = CircuitState.CLOSED, None, None
    throttle.probe_backoff, throttle.probe_expires_at, throttle.last_error = 0, None, ""
    throttle.outage_streak, throttle.streak_since = 0, None


def _seconds(since: datetime, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds())


# --- the upstream circuit, probed by staff ----------------------------------------------------------------------


@transaction.atomic
def record_probe(*, workflow_id: int, failure: str, now: datetime | None = None) -> Upstream:
    """Staff checked the upstream by hand (`probe_upstream`, the batch page): an answer closes the circuit, a
    failure keeps it open and schedules the next probe as if a probe row had failed."""
    now = now or clock.now()
    WorkflowThrottle.objects.get_or_create(workflow_id=workflow_id, defaults={"refilled_at": now})
    throttle = WorkflowThrottle.objects.select_for_update().get(pk=workflow_id)
    if not failure:
        _close(throttle, now)
    elif throttle.circuit != CircuitState.CLOSED:
        throttle.last_error = failure[:300]
        _open(throttle, now, max(settings.BATCHES_CIRCUIT_PROBE_MIN, throttle.probe_backoff))
    throttle.save(update_fields=CIRCUIT_FIELDS)
    return upstream_of(throttle)
