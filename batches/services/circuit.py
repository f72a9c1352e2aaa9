"""The upstream circuit of each workflow, in its WorkflowThrottle row: its states, the streak of outage-class
failures that moves it, and which claims it lets through. The health check that decides whether Dify is up, its
verdict and the refund are in services/upstream_health.py. The row is locked as services/throttle.py says.

- `closed`: normal. Outage-class failures (connection, timeout, upstream_error) count up a streak; any answer
  from Dify (a success, a 429, a 4xx about the row, a failed run) resets it. BATCHES_CIRCUIT_FAILURES failures in
  a row make the circuit ask Dify (`half_open`, never yet open): claims stop until one health check, `GET
  /parameters` and never a row, says whether Dify is up. Up: the failures were the rows' own (they keep what they
  spent), the circuit closes, and the next check comes a threshold of failures later. Down: it opens.
- `open`: Dify is down; claims take no rows of the workflow. When `next_probe_at` passes, one health check (the
  circuit is `half_open` while it is on its way) decides: an answer closes the circuit, no answer doubles the
  wait (BATCHES_CIRCUIT_PROBE_MIN doubling to BATCHES_CIRCUIT_PROBE_MAX, with jitter).

A failure that comes while the circuit is open costs its row no automatic retry: the row goes back to pending and
its Attempt is marked as during an outage; when the circuit opens, every try of the streak that led to it is
refunded too, whatever its trigger. Only failures while Dify otherwise answers spend a row's retries, so a row with
a problem of its own still fails.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from batches.choices import ANSWERED_ERRORS, OUTAGE_ERRORS, CircuitState
from batches.conf import settings
from batches.dify.types import CallResult
from batches.models import BatchTask, WorkflowThrottle
from batches.selectors.batches import upstream_of
from batches.services.leases import Claim

logger = logging.getLogger(__name__)
CIRCUIT_FIELDS = [
    "circuit",
    "circuit_since",
    "outage_streak",
    "streak_since",
    "last_error",
    "next_probe_at",
    "probe_backoff",
    "probe_expires_at",
    "probe_owner",
    "checked_streak",
    "partial_since",
]


# --- inside a claim --------------------------------------------------------------------------------------------


def admits(batch: BatchTask) -> bool:
    """Whether a claim may take rows of the batch under its workflow's circuit: only while it is closed.

    No row is ever sent to find out whether Dify is back: the health check (services/upstream_health.py) does. The
    throttle was read with the batch row (locked by the claim), so this costs no query.
    """
    seen = getattr(batch.workflow, "throttle", None)
    return seen is None or seen.circuit == CircuitState.CLOSED


def down_too_long(batch: BatchTask, now: datetime) -> str:
    """The reason to pause a batch whose upstream has been down past BATCHES_OUTAGE_PAUSE_MINUTES (0: never)."""
    minutes = settings.BATCHES_OUTAGE_PAUSE_MINUTES
    upstream = upstream_of(getattr(batch.workflow, "throttle", None))
    if not minutes or not upstream.waiting or not upstream.since:
        return ""
    if upstream.since > now - timedelta(minutes=minutes):
        return ""
    return f"Paused: Dify has been unreachable since {upstream.since:%Y-%m-%d %H:%M} UTC ({upstream.last_error})"


# --- when results are recorded ---------------------------------------------------------------------------------


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
    if (throttle.circuit, throttle.outage_streak) != before or refunded:
        throttle.save(update_fields=CIRCUIT_FIELDS)
    return refunded


def _feed(throttle: WorkflowThrottle, claim_: Claim, result: CallResult, now: datetime) -> bool:
    """Move the circuit for one result; True if the result's row should not pay for its failure."""
    if result.ok or result.error_type in ANSWERED_ERRORS:
        if _news(throttle, claim_):
            close_circuit(throttle, now)
        return False
    if result.error_type not in OUTAGE_ERRORS:
        return False
    if throttle.partial_since and claim_.started_at <= throttle.partial_since:
        return True  # a call sent before a partial outage paused its batch: it costs no retry
    throttle.outage_streak += 1
    throttle.streak_since = min(throttle.streak_since or claim_.started_at, claim_.started_at)
    throttle.last_error = describe(result)
    threshold = throttle.checked_streak + settings.BATCHES_CIRCUIT_FAILURES
    if throttle.circuit == CircuitState.CLOSED and throttle.outage_streak >= threshold:
        _ask_dify(throttle, now)
    # Once the circuit has opened, a failure (a call sent before it opened) is the outage's: it costs no retry.
    # While a streak waits for the health check, the failures spend retries as usual; the check refunds them
    # if Dify is found down (services/upstream_health.py).
    return opened(throttle)


def opened(throttle: WorkflowThrottle) -> bool:
    """Open, or half open after being open (probing): not a streak waiting for its first health check."""
    return throttle.circuit != CircuitState.CLOSED and throttle.circuit_since is not None


def _ask_dify(throttle: WorkflowThrottle, now: datetime) -> None:
    """Enough failures in a row: hold the workflow's claims until a health check says whether Dify is up (the
    first runner to see the check due sends it, services/upstream_health.py)."""
    logger.info(
        "workflow %s: %s outage-class failures in a row (%s); asking Dify whether it is up",
        throttle.workflow_id,
        throttle.outage_streak,
        throttle.last_error,
    )
    throttle.circuit, throttle.next_probe_at = CircuitState.HALF_OPEN, now
    throttle.probe_owner, throttle.probe_expires_at = "", None


def _news(throttle: WorkflowThrottle, claim_: Claim) -> bool:
    """Whether an answer says the upstream answers now. A call that was already under way before the failing ones
    were sent (or, once open, before the circuit opened: a slow success finishing during the outage) is old news."""
    if opened(throttle):
        return claim_.started_at > (throttle.circuit_since or claim_.started_at)
    return throttle.streak_since is None or claim_.started_at >= throttle.streak_since


def describe(result: CallResult) -> str:
    """One line for the circuit's last error: an answer's own text already names its status and code."""
    if result.error.startswith("HTTP "):
        return result.error[:300]
    status = f"HTTP {result.http_status} " if result.http_status else ""
    return f"{status}{result.error_type}: {result.error}"[:300]


def open_circuit(throttle: WorkflowThrottle, now: datetime, backoff: float) -> None:
    if throttle.circuit_since is None:
        throttle.circuit_since = now
        logger.warning(
            "workflow %s: upstream down after %s failures in a row (%s) and no answer to GET /parameters (%s); "
            "no new calls until a health check answers",
            throttle.workflow_id,
            throttle.outage_streak,
            throttle.last_error,
            throttle.probe_answer,
        )
    throttle.circuit, throttle.probe_backoff = CircuitState.OPEN, backoff
    throttle.probe_owner, throttle.probe_expires_at = "", None
    throttle.next_probe_at = now + timedelta(seconds=backoff * random.uniform(0.8, 1.2))


def close_circuit(throttle: WorkflowThrottle, now: datetime) -> None:
    """Dify answers: the streak is over, and the circuit closes if it was open."""
    if opened(throttle):
        since = throttle.circuit_since or now
        logger.warning(
            "workflow %s: upstream answers again after %.0f s down", throttle.workflow_id, _seconds(since, now)
        )
    throttle.circuit, throttle.circuit_since, throttle.next_probe_at = CircuitState.CLOSED, None, None
    throttle.probe_backoff, throttle.probe_expires_at, throttle.last_error = 0, None, ""
    throttle.outage_streak, throttle.streak_since, throttle.checked_streak = 0, None, 0
    throttle.probe_owner = ""


def _seconds(since: datetime, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds())
