"""The upstream circuit: what opens it, what it costs a row, probing, and what closes it."""

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from batches.dify import CallResult
from batches.models import Attempt, BatchStatus, CircuitState, ErrorType, Execution, ExecutionStatus, WorkflowThrottle
from batches.services import circuit, engine

FAILURES = 5  # BATCHES_CIRCUIT_FAILURES' default


def ok() -> CallResult:
    return CallResult(ok=True, outputs={"answer": "x"})


def failed(error_type: str = ErrorType.UPSTREAM_ERROR) -> CallResult:
    return CallResult(ok=False, error_type=error_type, error="Bad Gateway (not a Dify answer)", http_status=502)


def run(batch, results, now=None):
    """Claim one row per result and record the results in that order."""
    claims = engine.claim(batch.pk, "runner-a", limit=len(results), now=now)
    engine.record_results(list(zip(claims, results, strict=True)), now=now)
    return claims


def state(batch) -> str:
    return WorkflowThrottle.objects.get(workflow_id=batch.workflow_id).circuit


@pytest.fixture
def batch(make_batch):
    return make_batch(rows=40, status=BatchStatus.RUNNING, concurrency=20)


def test_enough_outage_failures_in_a_row_open_the_circuit(batch):
    run(batch, [failed()] * FAILURES)

    throttle = WorkflowThrottle.objects.get(workflow_id=batch.workflow_id)
    assert throttle.circuit == CircuitState.OPEN
    assert "HTTP 502" in throttle.last_error
    assert throttle.next_probe_at > timezone.now()


def test_an_answer_between_failures_resets_the_streak(batch):
    run(batch, [failed()] * (FAILURES - 1) + [ok()] + [failed()] * (FAILURES - 1))

    assert state(batch) == CircuitState.CLOSED


@pytest.mark.parametrize(
    ("error_type", "opens"),
    [
        (ErrorType.CONNECTION, True),
        (ErrorType.TIMEOUT, True),
        (ErrorType.UPSTREAM_ERROR, True),
        (ErrorType.RATE_LIMITED, False),
        (ErrorType.INVALID_INPUT, False),
        (ErrorType.WORKFLOW_FAILED, False),
        (ErrorType.BAD_RESPONSE, False),
    ],
)
def test_only_outage_class_failures_open_the_circuit(make_batch, error_type, opens):
    batch = make_batch(rows=20, status=BatchStatus.RUNNING, concurrency=20)

    run(batch, [failed(error_type)] * FAILURES)

    opened = WorkflowThrottle.objects.filter(workflow_id=batch.workflow_id, circuit=CircuitState.OPEN).exists()
    assert opened == opens


def test_a_flaky_upstream_with_ten_percent_errors_never_opens_it(make_batch):
    batch = make_batch(rows=3000, status=BatchStatus.RUNNING, concurrency=100)
    draw = random.Random(7)

    for _ in range(30):
        run(batch, [failed() if draw.random() < 0.1 else ok() for _ in range(100)])

    assert not WorkflowThrottle.objects.filter(circuit=CircuitState.OPEN).exists()
    assert Execution.objects.filter(status=ExecutionStatus.SUCCEEDED).count() > 2600


def test_failures_that_open_or_follow_the_opening_cost_no_retry(batch):
    claims = run(batch, [failed()] * 12)

    rows = Execution.objects.filter(pk__in=[c.execution_id for c in claims]).order_by("index")
    assert [row.auto_retries for row in rows] == [0] * 12
    assert all(row.status == ExecutionStatus.PENDING for row in rows)
    assert Attempt.objects.filter(during_outage=True).count() == 12


def test_the_streak_recorded_before_the_opening_gets_its_retries_back(batch):
    claims = engine.claim(batch.pk, "a", limit=FAILURES)
    for claim in claims:  # one failure per flush, as calls end one by one
        engine.record_results([(claim, failed())])

    assert state(batch) == CircuitState.OPEN
    assert set(Execution.objects.filter(batch=batch).values_list("auto_retries", flat=True)) == {0}
    assert Attempt.objects.filter(during_outage=False).count() == 0


def test_no_rows_are_claimed_while_the_circuit_is_open(batch):
    run(batch, [failed()] * FAILURES)

    assert engine.claim(batch.pk, "runner-b", limit=20) == []


def test_batches_of_another_workflow_carry_on(batch, make_batch):
    other = make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=5)
    run(batch, [failed()] * FAILURES)

    assert len(engine.claim(other.pk, "runner-b", limit=5)) == 5


def test_after_the_wait_exactly_one_row_is_sent_as_the_probe(batch, make_batch):
    second = make_batch(rows=5, workflow=batch.workflow, status=BatchStatus.RUNNING, concurrency=5)
    run(batch, [failed()] * FAILURES)
    later = timezone.now() + timedelta(seconds=60)

    claimers = [(batch, "a"), (second, "b"), (batch, "c")]
    probes = [engine.claim(b.pk, owner, limit=20, now=later) for b, owner in claimers]

    assert [len(claims) for claims in probes] == [1, 0, 0]
    assert state(batch) == CircuitState.HALF_OPEN


def test_a_probe_that_succeeds_closes_the_circuit_and_the_batch_resumes(batch):
    run(batch, [failed()] * FAILURES)
    later = timezone.now() + timedelta(seconds=60)

    run(batch, [ok()], now=later)

    assert state(batch) == CircuitState.CLOSED
    assert len(engine.claim(batch.pk, "runner-a", limit=20, now=later)) == 20


def test_a_probe_that_fails_reopens_the_circuit_with_a_longer_wait(batch):
    run(batch, [failed()] * FAILURES)
    first_wait = WorkflowThrottle.objects.get().probe_backoff
    later = timezone.now() + timedelta(seconds=60)
    retries_before = Execution.objects.get(batch=batch, index=0).auto_retries

    (probe,) = run(batch, [failed(ErrorType.CONNECTION)], now=later)

    throttle = WorkflowThrottle.objects.get()
    assert (throttle.circuit, throttle.probe_backoff) == (CircuitState.OPEN, 2 * first_wait)
    assert Execution.objects.get(pk=probe.execution_id).auto_retries == retries_before


def test_a_probe_grant_with_no_row_to_send_is_handed_to_the_next_claim(batch, make_batch):
    run(batch, [failed()] * FAILURES)
    Execution.objects.filter(batch=batch, status=ExecutionStatus.PENDING).update(
        not_before=timezone.now() + timedelta(hours=1)
    )
    later = timezone.now() + timedelta(seconds=60)
    second = make_batch(rows=5, workflow=batch.workflow, status=BatchStatus.RUNNING, concurrency=5)

    assert engine.claim(batch.pk, "a", limit=20, now=later) == []
    assert len(engine.claim(second.pk, "b", limit=20, now=later)) == 1


def test_a_row_that_keeps_failing_while_others_succeed_uses_up_its_retries(make_batch):
    batch = make_batch(rows=30, status=BatchStatus.RUNNING, concurrency=30, max_retries=2)
    bad = Execution.objects.get(batch=batch, index=0)

    for hours in range(3):
        now = timezone.now() + timedelta(hours=hours)
        claims = engine.claim(batch.pk, "a", limit=10, now=now)
        results = [failed() if c.execution_id == bad.pk else ok() for c in claims]
        engine.record_results(list(zip(claims, results, strict=True)), now=now)

    bad.refresh_from_db()
    assert (bad.status, bad.auto_retries) == (ExecutionStatus.FAILED, 2)


def test_invalid_input_during_an_outage_still_fails_at_once(batch):
    run(batch, [failed()] * FAILURES)
    later = timezone.now() + timedelta(seconds=60)

    (probe,) = run(batch, [failed(ErrorType.INVALID_INPUT)], now=later)

    assert Execution.objects.get(pk=probe.execution_id).status == ExecutionStatus.FAILED
    assert state(batch) == CircuitState.CLOSED  # Dify answered: it is up


def test_a_batch_pauses_after_the_configured_minutes_of_outage(batch, settings):
    settings.BATCHES_OUTAGE_PAUSE_MINUTES = 5
    run(batch, [failed()] * FAILURES)

    engine.claim(batch.pk, "a", limit=20, now=timezone.now() + timedelta(minutes=6))

    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED
    assert "unreachable since" in batch.status_reason


def test_a_manual_probe_that_gets_an_answer_closes_the_circuit(batch):
    run(batch, [failed()] * FAILURES)

    upstream = circuit.record_probe(workflow_id=batch.workflow_id, failure="")

    assert upstream.state == CircuitState.CLOSED
    assert state(batch) == CircuitState.CLOSED


def test_a_manual_probe_that_fails_keeps_it_open(batch):
    run(batch, [failed()] * FAILURES)

    upstream = circuit.record_probe(workflow_id=batch.workflow_id, failure="connection: refused")

    assert (upstream.state, upstream.last_error) == (CircuitState.OPEN, "connection: refused")


@pytest.mark.django_db(transaction=True)
def test_claims_from_two_connections_take_one_probe_between_them(make_batch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections are PostgreSQL's")
    first = make_batch(rows=20, status=BatchStatus.RUNNING, concurrency=20)
    second = make_batch(rows=20, workflow=first.workflow, status=BatchStatus.RUNNING, concurrency=20)
    run(first, [failed()] * FAILURES)
    later = timezone.now() + timedelta(seconds=60)
    start, taken = threading.Barrier(8), []

    def claim(batch_id: int, owner: str) -> None:
        start.wait()
        try:
            taken.append(len(engine.claim(batch_id, owner, limit=20, now=later)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(b.pk, f"r{i}-{b.pk}")) for i in range(4) for b in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(taken) == [0] * 7 + [1]


def test_a_slow_success_sent_before_the_failures_does_not_close_the_circuit(batch):
    now = timezone.now()
    (straggler,) = engine.claim(batch.pk, "a", limit=1, now=now)
    run(batch, [failed()] * FAILURES, now=now + timedelta(seconds=1))

    engine.record_results([(straggler, ok())], now=now + timedelta(seconds=2))

    assert state(batch) == CircuitState.OPEN


def test_a_success_sent_with_the_failures_resets_the_streak(batch):
    now = timezone.now()
    claims = engine.claim(batch.pk, "a", limit=FAILURES + 1, now=now)
    results = [failed()] * (FAILURES - 1) + [ok(), failed()]

    engine.record_results(list(zip(claims, results, strict=True)), now=now + timedelta(seconds=1))

    assert WorkflowThrottle.objects.get().outage_streak == 1
