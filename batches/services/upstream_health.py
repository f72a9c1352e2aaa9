"""The upstream circuit's health check: one question to Dify that costs nothing and concerns no row, its verdict,
the refund of the tries an outage cost, and the partial outage. (How results feed the circuit, and which claims it
lets through, is in services/circuit.py.)

1. A streak of outage-class failures (circuit.observe), or an open circuit whose wait is over, makes a health
   check due. The first runner to see it takes it (`take_probes`: a guarded UPDATE of the WorkflowThrottle row,
   with a lease its holder renews with its row leases, services/leases.py), so exactly one check is on its way
   across all processes and machines, however long it takes; a holder that dies loses it when its lease expires.
2. The holder sends `GET /parameters` with the app's key (dify/pages.check_health), outside any transaction, and
   records the answer (`answered`), only if it still holds the check.
3. The verdict. Down (no answer, a 5xx, a page that is not Dify's): the circuit opens (or stays open, waiting
   longer), and every try of the streak is refunded (`refund_streak`). Up after being open: it closes. Up after a
   streak: the failures were the rows' own and keep what they spent; but if more than BATCHES_PARTIAL_OUTAGE_ROWS
   distinct rows have failed outage-class in a row, Dify answers while its runs fail (a partial outage): the
   workflow's running batches pause with the reason, and those rows get their tries back.
Staff can ask at once (`probe_upstream`: `manage.py probe_upstream`, the batch page's button), one check at a time
too.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Greatest

from batches.choices import OUTAGE_ERRORS, BatchStatus, CircuitState, ExecutionStatus
from batches.conf import settings
from batches.db import clock
from batches.dify import pages
from batches.dify.pages import Health
from batches.models import Attempt, BatchTask, Execution, Workflow, WorkflowThrottle
from batches.selectors.batches import Upstream, upstream_of
from batches.services import circuit
from batches.services.claims import wake_runners
from batches.services.leases import lease_expiry
from batches.services.transitions import pause, transition
from batches.services.workflows import app_settings

logger = logging.getLogger(__name__)
ANSWER_FIELDS = [*circuit.CIRCUIT_FIELDS, "probe_answer", "probe_answered_at"]


def free(now: datetime) -> Q:
    """No health check is on its way (or its holder has lost it: its lease expired)."""
    return Q(probe_owner="") | Q(probe_expires_at__lt=now)


def take_probes(*, owner: str, workflow_ids: Collection[int], now: datetime | None = None) -> list[int]:
    """Take the health checks that are due among these workflows; returns those now `owner`'s to send."""
    now = now or clock.now()
    due = Q(next_probe_at__lte=now) & ~Q(circuit=CircuitState.CLOSED) & free(now)
    taken = []
    for workflow_id in WorkflowThrottle.objects.filter(due, workflow_id__in=list(workflow_ids)).values_list("pk"):
        if _take(WorkflowThrottle.objects.filter(due, pk=workflow_id[0]), owner, now):
            taken.append(workflow_id[0])
    return taken


def take_probe_now(*, workflow_id: int, owner: str, now: datetime | None = None) -> bool:
    """Staff's check: due at once, whatever the circuit's state, unless another check is on its way."""
    now = now or clock.now()
    WorkflowThrottle.objects.get_or_create(workflow_id=workflow_id, defaults={"refilled_at": now})
    return _take(WorkflowThrottle.objects.filter(free(now), pk=workflow_id), owner, now)


def _take(throttles: QuerySet[WorkflowThrottle], owner: str, now: datetime) -> bool:
    # A conditional UPDATE: of several takers at once, one changes the row, the others find it taken.
    changes = {"probe_owner": owner, "probe_expires_at": lease_expiry(now)}
    opened = Q(circuit=CircuitState.OPEN)
    taken = throttles.filter(opened).update(circuit=CircuitState.HALF_OPEN, **changes)
    return bool(taken or throttles.exclude(opened).update(**changes))


def after_the_check_on_its_way(workflow_id: int, timeout: float) -> Upstream:
    """The circuit once the check another process is sending has answered (or `timeout` seconds later): staff who
    asked for a check get its verdict rather than a second check. Polls; holds nothing."""
    deadline = time.monotonic() + timeout
    holder = WorkflowThrottle.objects.filter(pk=workflow_id).exclude(probe_owner="")
    while time.monotonic() < deadline and holder.exists():
        time.sleep(0.2)
    return upstream_of(WorkflowThrottle.objects.filter(pk=workflow_id).first())


def release_probes(owner: str, *, workflow_id: int | None = None) -> None:
    """A stopping runner lets go of its checks (or of one it cannot send): the next runner sends them at once."""
    held = WorkflowThrottle.objects.filter(probe_owner=owner)
    if workflow_id is not None:
        held = held.filter(pk=workflow_id)
    held.update(probe_owner="", probe_expires_at=None)


def answered(*, workflow_id: int, owner: str, health: Health, now: datetime | None = None) -> Upstream:
    """Record a health check's answer and its verdict (nothing if `owner` no longer holds the check: a run's
    answer or another check decided meanwhile). Pausing batches for a partial outage comes after the
    transaction: a claim locks a batch row before the throttle row, never after."""
    now = now or clock.now()
    decided, partial = _decide(workflow_id, owner, health, now)
    if partial:
        for batch_id in BatchTask.objects.running().filter(workflow_id=workflow_id).values_list("pk", flat=True):
            pause(batch_id, reason=partial)
    if decided is not None and not decided.waiting:
        transaction.on_commit(wake_runners)
    return decided or upstream_of(WorkflowThrottle.objects.filter(pk=workflow_id).first())


@transaction.atomic
def _decide(workflow_id: int, owner: str, health: Health, now: datetime) -> tuple[Upstream | None, str]:
    locked = WorkflowThrottle.objects.select_for_update().filter(pk=workflow_id, probe_owner=owner).first()
    if locked is None:
        return None, ""
    locked.probe_answer, locked.probe_answered_at = health.answer[:300], now
    locked.probe_owner, locked.probe_expires_at = "", None
    partial = ""
    if locked.circuit == CircuitState.CLOSED:
        pass  # staff asked while Dify answers runs: the answer is only shown
    elif not health.up:
        _down(locked, health, now)
    elif circuit.opened(locked):
        circuit.close_circuit(locked, now)
    else:
        partial = _up_after_a_streak(locked, now)
    locked.save(update_fields=ANSWER_FIELDS)
    return upstream_of(locked), partial


def _down(locked: WorkflowThrottle, health: Health, now: datetime) -> None:
    if circuit.opened(locked):
        locked.last_error = health.answer[:300]
        backoff = min(
            settings.BATCHES_CIRCUIT_PROBE_MAX, max(settings.BATCHES_CIRCUIT_PROBE_MIN, 2 * locked.probe_backoff)
        )
    else:
        backoff = settings.BATCHES_CIRCUIT_PROBE_MIN
    circuit.open_circuit(locked, now, backoff)
    # Every time, not only when it opens: a refund that a crash interrupted is made by the next check.
    if locked.streak_since is not None:
        refund_streak(locked.workflow_id, locked.streak_since)


def _up_after_a_streak(locked: WorkflowThrottle, now: datetime) -> str:
    """Dify answers: the streak was the rows' own failures, unless too many distinct rows failed in a row."""
    rows = _failing_rows(locked)
    limit = settings.BATCHES_PARTIAL_OUTAGE_ROWS
    if limit and len(rows) > limit:
        reason = f"Dify answers, but its runs fail: {len(rows)} rows in a row failed ({locked.last_error})"
        logger.warning("workflow %s: %s", locked.workflow_id, reason)
        refund_streak(locked.workflow_id, locked.streak_since or now)
        circuit.close_circuit(locked, now)  # resuming the batch starts counting again
        locked.partial_since = now  # the calls still on their way fail for the same reason
        return reason[:500]
    logger.info("workflow %s: Dify answers; the %s failures were the rows' own", locked.workflow_id, len(rows))
    locked.circuit, locked.next_probe_at, locked.checked_streak = CircuitState.CLOSED, None, locked.outage_streak
    return ""


def _failing_rows(locked: WorkflowThrottle) -> set[int]:
    return set(_streak(locked.workflow_id, locked.streak_since or clock.now()).values_list("execution_id", flat=True))


def _streak(workflow_id: int, since: datetime) -> QuerySet[Attempt]:
    return Attempt.objects.filter(
        execution__batch__workflow_id=workflow_id,
        outcome=Attempt.Outcome.FAILED,
        error_type__in=OUTAGE_ERRORS,
        during_outage=False,
        started_at__gte=since,
    )


def refund_streak(workflow_id: int, since: datetime) -> int:
    """Every try of the streak (since `since`) was the outage's: whatever triggered it (auto, manual, recovery),
    it gives back the retry it spent, and a row it failed for good goes back to pending (its batch runs again
    if it had finished). Each try is refunded once: its Attempt is then marked as during the outage.

    A row claimed again since is running: it gets them back too, as its result adds only what its own try spends
    (services/results.py adds it to the row's count)."""
    streak = _streak(workflow_id, since)
    spent = Counter(streak.values_list("execution_id", flat=True))
    streak.update(during_outage=True)
    failed = Execution.objects.filter(pk__in=list(spent), status=ExecutionStatus.FAILED, error_type__in=OUTAGE_ERRORS)
    ended = set(failed.values_list("pk", flat=True))
    failed.update(status=ExecutionStatus.PENDING, finished_at=None, not_before=None)
    # A try that failed its row for good spent no retry (none was left): that row gets one less back.
    refunds = {row: times - (row in ended) for row, times in spent.items()}
    for refund in set(refunds.values()) - {0}:
        rows = [row for row, value in refunds.items() if value == refund]
        Execution.objects.filter(pk__in=rows).update(auto_retries=Greatest(F("auto_retries") - refund, 0))
    if ended:
        finished = BatchTask.objects.filter(pk__in=Execution.objects.filter(pk__in=ended).values("batch_id"))
        transition(finished, allowed=[BatchStatus.FINISHED], status=BatchStatus.RUNNING, finished_at=None)
    return len(spent)


# --- staff's check ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    upstream: Upstream  # the circuit after the probe
    failure: str  # "" when Dify answered; else why not (whatever the circuit says: a closed one stays closed)


def probe_upstream(workflow_id: int, *, timeout: float = 10) -> Probe:
    """Staff check a silent upstream now (`probe_upstream`, the batch page): one health check that costs no tokens
    (`GET /parameters`), its verdict as a runner's would be. If another check is on its way, none is sent: its
    verdict is awaited instead."""
    owner = f"staff:{uuid.uuid4().hex}"
    if not take_probe_now(workflow_id=workflow_id, owner=owner):
        return Probe(after_the_check_on_its_way(workflow_id, timeout), "")
    health = pages.check_health(app_settings(Workflow.objects.get(pk=workflow_id)), timeout)
    upstream = answered(workflow_id=workflow_id, owner=owner, health=health)
    return Probe(upstream, "" if health.up else health.answer)
