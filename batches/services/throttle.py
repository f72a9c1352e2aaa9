"""What every process shares about one workflow's upstream, in its WorkflowThrottle row: an rpm token bucket and an
adaptive (AIMD) concurrency limit. The same row holds the upstream circuit (services/circuit.py).

The row is locked only inside a claim's short transaction (after the batch row, always in that order), in the
transaction that records results, or for one update after a flush of results that saw 429s.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.db.models import Case, F, Q, When
from django.db.models.functions import Least

from batches.models import Execution, WorkflowThrottle

DECREASE_EVERY = timedelta(seconds=1)  # one wave of 429s halves the limit once, not once per answer
FORGET_PAST = 2  # times the level of the last 429s: past it, the adaptive limit is dropped


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
