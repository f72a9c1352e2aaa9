"""The upstream circuit (batches/services/circuit.py): the streak of outage-class failures, the health check it
asks for, what it admits, and the tries an outage costs no row."""

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ErrorType, ExecutionStatus
from batches.dify.pages import Health
from batches.dify.types import CallResult
from batches.models import Attempt, Execution, WorkflowThrottle
from batches.services import circuit, claims, results, upstream_health

FAILURES = 5  # BATCHES_CIRCUIT_FAILURES' default
DOWN = Health(False, "HTTP 502 upstream_error")
UP = Health(True, "HTTP 200: Dify answers")


def ok() -> CallResult:
    return CallResult(ok=True, outputs={"answer": "x"})


def failed(error_type: str = ErrorType.UPSTREAM_ERROR) -> CallResult:
    return CallResult(ok=False, error_type=error_type, error="Bad Gateway (not a Dify answer)", http_status=502)


def run(batch, outcomes, now=None):
    """Claim one row per result and record the results in that order."""
    claimed = claims.claim(batch.pk, owner="runner-a", limit=len(outcomes), now=now)
    results.record_results(list(zip(claimed, outcomes, strict=True)), now=now)
    return claimed


def check(batch, health, now=None, owner="checker"):
    """The runner that takes the due health check records what GET /parameters answered."""
    assert upstream_health.take_probes(owner=owner, workflow_ids=[batch.workflow_id], now=now) == [batch.workflow_id]
    return upstream_health.answered(workflow_id=batch.workflow_id, owner=owner, health=health, now=now)


def open_circuit(batch):
    """A streak, and the health check finds Dify down."""
    run(batch, [failed()] * FAILURES)
    check(batch, DOWN)


def state(batch) -> str:
    return WorkflowThrottle.objects.get(workflow_id=batch.workflow_id).circuit


@pytest.fixture
def batch(make_batch):
    return make_batch(rows=40, status=BatchStatus.RUNNING, concurrency=20)


def test_enough_outage_failures_in_a_row_ask_dify_before_the_circuit_opens(batch):
    run(batch, [failed()] * FAILURES)
    asking = WorkflowThrottle.objects.get(workflow_id=batch.workflow_id)
    claimed_while_asking = claims.claim(batch.pk, owner="runner-b", limit=20)

    check(batch, DOWN)

    throttle = WorkflowThrottle.objects.get(workflow_id=batch.workflow_id)
    assert (asking.circuit, asking.circuit_since, claimed_while_asking) == (CircuitState.HALF_OPEN, None, [])
    assert throttle.circuit == CircuitState.OPEN
    assert "HTTP 502" in throttle.last_error
    assert throttle.probe_answer == "HTTP 502 upstream_error"
    assert throttle.next_probe_at > timezone.now()


def test_an_answer_between_failures_resets_the_streak(batch):
    run(batch, [failed()] * (FAILURES - 1) + [ok()] + [failed()] * (FAILURES - 1))

    assert state(batch) == CircuitState.CLOSED


@pytest.mark.parametrize(
    ("error_type", "asks"),
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
def test_only_outage_class_failures_make_the_circuit_ask_dify(make_batch, error_type, asks):
    batch = make_batch(rows=20, status=BatchStatus.RUNNING, concurrency=20)

    run(batch, [failed(error_type)] * FAILURES)

    asking = WorkflowThrottle.objects.filter(workflow_id=batch.workflow_id, circuit=CircuitState.HALF_OPEN).exists()
    assert asking == asks


def test_a_flaky_upstream_with_ten_percent_errors_never_opens_it(make_batch):
    batch = make_batch(rows=3000, status=BatchStatus.RUNNING, concurrency=100)
    draw = random.Random(7)

    for _ in range(30):
        run(batch, [failed() if draw.random() < 0.1 else ok() for _ in range(100)])

    assert not WorkflowThrottle.objects.exclude(circuit=CircuitState.CLOSED).exists()
    assert Execution.objects.filter(status=ExecutionStatus.SUCCEEDED).count() > 2600


def test_failures_of_the_streak_and_after_the_opening_cost_no_retry(batch):
    claimed = claims.claim(batch.pk, owner="a", limit=12)
    results.record_results([(claim, failed()) for claim in claimed[:7]])  # five ask Dify, two more while it is asked
    check(batch, DOWN)

    results.record_results([(claim, failed()) for claim in claimed[7:]])  # calls sent before it opened

    rows = Execution.objects.filter(pk__in=[c.execution_id for c in claimed]).order_by("index")
    assert [row.auto_retries for row in rows] == [0] * 12
    assert all(row.status == ExecutionStatus.PENDING for row in rows)
    assert Attempt.objects.filter(during_outage=True).count() == 12


def test_the_streak_recorded_before_the_opening_gets_its_retries_back(batch):
    claimed = claims.claim(batch.pk, owner="a", limit=FAILURES)
    for claim in claimed:  # one failure per flush, as calls end one by one
        results.record_results([(claim, failed())])
    check(batch, DOWN)

    assert state(batch) == CircuitState.OPEN
    assert set(Execution.objects.filter(batch=batch).values_list("auto_retries", flat=True)) == {0}
    assert Attempt.objects.filter(during_outage=False).count() == 0


def test_a_row_of_the_streak_claimed_again_before_the_opening_gets_its_retry_back(batch):
    first, *others = claims.claim(batch.pk, owner="a", limit=FAILURES)
    results.record_results([(first, failed())])
    Execution.objects.filter(pk=first.execution_id).update(not_before=None)  # a backoff drawn close to 0 s
    (again,) = claims.claim(batch.pk, owner="a", limit=1)
    for claim in others:
        results.record_results([(claim, failed())])
    check(batch, DOWN)
    assert state(batch) == CircuitState.OPEN  # while the row's second try was in flight

    results.record_results([(again, failed())])

    assert Execution.objects.get(pk=first.execution_id).auto_retries == 0


def test_no_rows_are_claimed_while_the_circuit_is_open(batch):
    open_circuit(batch)

    assert claims.claim(batch.pk, owner="runner-b", limit=20) == []


def test_batches_of_another_workflow_carry_on(batch, make_batch):
    other = make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=5)
    open_circuit(batch)

    assert len(claims.claim(other.pk, owner="runner-b", limit=5)) == 5


def test_after_the_wait_one_health_check_and_no_row_is_sent(batch, make_batch):
    second = make_batch(rows=5, workflow=batch.workflow, status=BatchStatus.RUNNING, concurrency=5)
    open_circuit(batch)
    later = timezone.now() + timedelta(seconds=60)

    checks = [upstream_health.take_probes(owner=owner, workflow_ids=[batch.workflow_id], now=later) for owner in "abc"]
    rows = [claims.claim(b.pk, owner=owner, limit=20, now=later) for b, owner in [(batch, "a"), (second, "b")]]

    assert checks == [[batch.workflow_id], [], []]
    assert rows == [[], []]
    assert state(batch) == CircuitState.HALF_OPEN


def test_a_health_check_that_answers_closes_the_circuit_and_the_batch_resumes(batch):
    open_circuit(batch)
    later = timezone.now() + timedelta(seconds=60)

    check(batch, UP, now=later)

    assert state(batch) == CircuitState.CLOSED
    assert len(claims.claim(batch.pk, owner="runner-a", limit=20, now=later)) == 20


def test_a_health_check_without_an_answer_keeps_it_open_with_a_longer_wait(batch):
    open_circuit(batch)
    first_wait = WorkflowThrottle.objects.get().probe_backoff
    later = timezone.now() + timedelta(seconds=60)
    retries_before = list(Execution.objects.filter(batch=batch).values_list("auto_retries", flat=True))

    check(batch, Health(False, "connection: the upstream could not be reached"), now=later)

    throttle = WorkflowThrottle.objects.get()
    assert (throttle.circuit, throttle.probe_backoff) == (CircuitState.OPEN, 2 * first_wait)
    assert throttle.last_error == "connection: the upstream could not be reached"
    assert list(Execution.objects.filter(batch=batch).values_list("auto_retries", flat=True)) == retries_before


def test_the_answer_of_a_check_whose_holder_lost_it_changes_nothing(batch):
    *streak, sent_with_them = claims.claim(batch.pk, owner="a", limit=FAILURES + 1)
    results.record_results([(claim, failed()) for claim in streak])
    upstream_health.take_probes(owner="slow", workflow_ids=[batch.workflow_id])
    results.record_results([(sent_with_them, ok())])  # a run answered meanwhile: the circuit closed

    upstream_health.answered(workflow_id=batch.workflow_id, owner="slow", health=DOWN)

    assert state(batch) == CircuitState.CLOSED


def test_a_row_that_keeps_failing_while_others_succeed_uses_up_its_retries(make_batch):
    batch = make_batch(rows=30, status=BatchStatus.RUNNING, concurrency=30, max_retries=2)
    bad = Execution.objects.get(batch=batch, index=0)

    for hours in range(3):
        now = timezone.now() + timedelta(hours=hours)
        claimed = claims.claim(batch.pk, owner="a", limit=10, now=now)
        outcomes = [failed() if c.execution_id == bad.pk else ok() for c in claimed]
        results.record_results(list(zip(claimed, outcomes, strict=True)), now=now)

    bad.refresh_from_db()
    assert (bad.status, bad.auto_retries) == (ExecutionStatus.FAILED, 2)


def test_invalid_input_of_a_call_sent_before_the_opening_still_fails_at_once(batch):
    (straggler,) = claims.claim(batch.pk, owner="a", limit=1)
    open_circuit(batch)

    results.record_results([(straggler, failed(ErrorType.INVALID_INPUT))])

    assert Execution.objects.get(pk=straggler.execution_id).status == ExecutionStatus.FAILED
    assert state(batch) == CircuitState.OPEN  # an answer to a call sent before the outage is old news


def test_a_batch_pauses_after_the_configured_minutes_of_outage(batch, settings):
    settings.BATCHES_OUTAGE_PAUSE_MINUTES = 5
    open_circuit(batch)

    claims.claim(batch.pk, owner="a", limit=20, now=timezone.now() + timedelta(minutes=6))

    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED
    assert "unreachable since" in batch.status_reason


def test_a_staff_check_that_gets_an_answer_closes_the_circuit(batch):
    open_circuit(batch)

    assert upstream_health.take_probe_now(workflow_id=batch.workflow_id, owner="staff")
    upstream = upstream_health.answered(workflow_id=batch.workflow_id, owner="staff", health=UP)

    assert (upstream.state, upstream.probe_answer) == (CircuitState.CLOSED, "HTTP 200: Dify answers")
    assert state(batch) == CircuitState.CLOSED


def test_a_staff_check_that_fails_keeps_it_open(batch):
    open_circuit(batch)

    upstream_health.take_probe_now(workflow_id=batch.workflow_id, owner="staff")
    failure = Health(False, "connection: refused")
    upstream = upstream_health.answered(workflow_id=batch.workflow_id, owner="staff", health=failure)

    assert (upstream.state, upstream.last_error) == (CircuitState.OPEN, "connection: refused")


def test_a_staff_check_sends_nothing_while_a_runner_s_check_is_on_its_way_and_gets_its_verdict(batch, monkeypatch):
    open_circuit(batch)
    upstream_health.take_probes(
        owner="runner", workflow_ids=[batch.workflow_id], now=timezone.now() + timedelta(seconds=60)
    )
    sent = []
    monkeypatch.setattr("batches.dify.pages.check_health", lambda *args, **kwargs: sent.append(args))
    # The runner's answer comes while staff wait for it.
    monkeypatch.setattr(
        "batches.services.upstream_health.time.sleep",
        lambda seconds: upstream_health.answered(workflow_id=batch.workflow_id, owner="runner", health=UP),
    )

    upstream = upstream_health.probe_upstream(batch.workflow_id).upstream

    assert (upstream.state, upstream.probe_answer, sent) == (CircuitState.CLOSED, "HTTP 200: Dify answers", [])


@pytest.mark.django_db(transaction=True)
def test_takers_on_eight_connections_take_one_health_check_between_them(make_batch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks across connections are PostgreSQL's")
    first = make_batch(rows=20, status=BatchStatus.RUNNING, concurrency=20)
    open_circuit(first)
    later = timezone.now() + timedelta(seconds=60)
    start, taken = threading.Barrier(8), []

    def take(owner: str) -> None:
        start.wait()
        try:
            taken.append(len(upstream_health.take_probes(owner=owner, workflow_ids=[first.workflow_id], now=later)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(taken) == [0] * 7 + [1]


def test_a_slow_success_sent_before_the_failures_does_not_close_the_circuit(batch):
    now = timezone.now()
    (straggler,) = claims.claim(batch.pk, owner="a", limit=1, now=now)
    run(batch, [failed()] * FAILURES, now=now + timedelta(seconds=1))
    check(batch, DOWN, now=now + timedelta(seconds=1))

    results.record_results([(straggler, ok())], now=now + timedelta(seconds=2))

    assert state(batch) == CircuitState.OPEN


def test_a_success_sent_with_the_failures_resets_the_streak(batch):
    now = timezone.now()
    claimed = claims.claim(batch.pk, owner="a", limit=FAILURES + 1, now=now)
    outcomes = [failed()] * (FAILURES - 1) + [ok(), failed()]

    results.record_results(list(zip(claimed, outcomes, strict=True)), now=now + timedelta(seconds=1))

    assert WorkflowThrottle.objects.get().outage_streak == 1


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (
            CallResult(
                ok=False, error_type="upstream_error", error="HTTP 500 internal_server_error: boom", http_status=500
            ),
            "HTTP 500 internal_server_error: boom",
        ),
        (CallResult(ok=False, error_type="connection", error="connection refused"), "connection: connection refused"),
    ],
)
def test_the_circuits_last_error_names_the_status_once(result: CallResult, said: str) -> None:
    assert circuit.describe(result) == said
