"""The upstream circuit's health check, its refund and the partial outage (services/upstream_health.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ErrorType, ExecutionStatus, Trigger
from batches.dify.pages import Health
from batches.dify.types import CallResult
from batches.models import BatchTask, Execution, WorkflowThrottle
from batches.services import claims, leases, lifecycle, results, transitions, upstream_health

HOUR = timedelta(hours=1)

FAILURES = 5  # BATCHES_CIRCUIT_FAILURES' default


def failed(error_type: str = ErrorType.UPSTREAM_ERROR) -> CallResult:
    return CallResult(ok=False, error_type=error_type, error="Bad Gateway (not a Dify answer)", http_status=502)


DOWN = Health(False, "HTTP 502 upstream_error")
UP = Health(True, "HTTP 200: Dify answers")


def check(batch, health, owner="checker", now=None):
    """A runner takes the health check that is due and records what it heard."""
    assert upstream_health.take_probes(owner=owner, workflow_ids=[batch.workflow_id], now=now) == [batch.workflow_id]
    return upstream_health.answered(workflow_id=batch.workflow_id, owner=owner, health=health, now=now)


def confirm_outage(batch) -> None:
    """The health check finds Dify down."""
    check(batch, DOWN)


def fail_one_by_one(batch, owner="a", now=None):
    claimed = claims.claim(batch.pk, owner=owner, limit=FAILURES, now=now)
    for claim in claimed:  # one failure per flush, as calls end one by one
        results.record_results([(claim, failed())], now=now)
    return claimed


def test_rows_the_streak_failed_for_good_go_back_to_pending_when_dify_is_found_down(make_batch):
    batch = make_batch(rows=10, status=BatchStatus.RUNNING, concurrency=10, max_retries=0)

    claimed = fail_one_by_one(batch)
    confirm_outage(batch)

    rows = Execution.objects.filter(pk__in=[c.execution_id for c in claimed])
    assert WorkflowThrottle.objects.get().circuit == CircuitState.OPEN
    assert sorted(rows.values_list("status", "auto_retries")) == [(ExecutionStatus.PENDING, 0)] * FAILURES


def test_manual_tries_of_the_streak_get_their_retries_back(make_batch):
    batch = make_batch(rows=5, status=BatchStatus.FINISHED, concurrency=5)
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.FAILED, error_type=ErrorType.INVALID_INPUT)
    lifecycle.retry_failed(batch.pk)

    claimed = fail_one_by_one(batch)
    confirm_outage(batch)

    assert {c.trigger for c in claimed} == {"manual"}
    assert set(Execution.objects.filter(batch=batch).values_list("status", "auto_retries")) == {
        (ExecutionStatus.PENDING, 0)
    }


def test_recovery_tries_of_the_streak_get_their_retries_back(make_batch):
    batch = make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=5)
    Execution.objects.filter(batch=batch).update(next_trigger=Trigger.RECOVERY)  # their workers died mid-call

    claimed = fail_one_by_one(batch)
    confirm_outage(batch)

    assert {c.trigger for c in claimed} == {Trigger.RECOVERY}
    assert set(Execution.objects.filter(batch=batch).values_list("auto_retries", flat=True)) == {0}


def test_a_probe_that_outlives_a_lease_while_its_holder_lives_keeps_the_circuit_to_itself(make_batch):
    batch = make_batch(rows=20, status=BatchStatus.RUNNING, concurrency=20)
    fail_one_by_one(batch)
    confirm_outage(batch)
    later = timezone.now() + timedelta(seconds=60)
    first = upstream_health.take_probes(owner="a", workflow_ids=[batch.workflow_id], now=later)

    leases.renew_leases("a", now=later + timedelta(seconds=25))  # the holder is alive: its check goes on
    second = upstream_health.take_probes(owner="b", workflow_ids=[batch.workflow_id], now=later + timedelta(seconds=35))

    assert (first, second) == ([batch.workflow_id], [])
    assert claims.claim(batch.pk, owner="b", limit=20, now=later + timedelta(seconds=35)) == []


def test_when_dify_answers_the_streak_keeps_its_spent_retries_and_the_next_check_is_a_threshold_later(make_batch):
    batch = make_batch(rows=20, status=BatchStatus.RUNNING, concurrency=20)
    claimed = fail_one_by_one(batch)

    check(batch, UP)
    # The streak's rows wait out their backoff (full jitter may make it ~0 s): the next claim takes other rows.
    Execution.objects.filter(pk__in=[c.execution_id for c in claimed]).update(not_before=timezone.now() + HOUR)
    claimed_after = claims.claim(batch.pk, owner="b", limit=FAILURES)
    for claim in claimed_after[:-1]:
        results.record_results([(claim, failed())])
    one_short = WorkflowThrottle.objects.get().circuit
    results.record_results([(claimed_after[-1], failed())])

    rows = Execution.objects.filter(pk__in=[c.execution_id for c in claimed])
    assert set(rows.values_list("status", "auto_retries")) == {(ExecutionStatus.PENDING, 1)}
    assert (one_short, WorkflowThrottle.objects.get().circuit) == (CircuitState.CLOSED, CircuitState.HALF_OPEN)


@pytest.mark.parametrize(("rows", "pauses"), [(10, False), (11, True)])
def test_more_than_the_partial_outage_rows_failing_while_dify_answers_pause_the_workflows_batches(
    make_batch, rows, pauses
):
    batch = make_batch(rows=rows, status=BatchStatus.RUNNING, concurrency=rows, max_retries=0)
    other = make_batch(rows=2, workflow=batch.workflow, status=BatchStatus.RUNNING, concurrency=2)
    claimed = claims.claim(batch.pk, owner="a", limit=rows)
    results.record_results([(claim, failed(ErrorType.TIMEOUT)) for claim in claimed])

    check(batch, UP)

    statuses = set(BatchTask.objects.filter(pk__in=[batch.pk, other.pk]).values_list("status", flat=True))
    assert statuses == ({BatchStatus.PAUSED} if pauses else {BatchStatus.RUNNING})
    failed_rows = Execution.objects.filter(batch=batch, status=ExecutionStatus.FAILED).count()
    assert failed_rows == (0 if pauses else rows)  # those that revealed it get their tries back
    if pauses:
        assert BatchTask.objects.get(pk=batch.pk).status_reason.startswith("Dify answers, but its runs fail: 11 rows")
        assert WorkflowThrottle.objects.get().outage_streak == 0  # resuming counts again from nothing


def test_a_batch_finished_by_the_streak_runs_again_when_dify_is_found_down(make_batch):
    batch = make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=5, max_retries=0)
    fail_one_by_one(batch)
    transitions.finish_done({batch.pk})

    confirm_outage(batch)

    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING


def test_a_call_on_its_way_when_a_partial_outage_paused_its_batch_costs_no_retry(make_batch):
    batch = make_batch(rows=12, status=BatchStatus.RUNNING, concurrency=12)
    *streak, on_its_way = claims.claim(batch.pk, owner="a", limit=12)
    results.record_results([(claim, failed(ErrorType.TIMEOUT)) for claim in streak])
    check(batch, UP)

    results.record_results([(on_its_way, failed(ErrorType.TIMEOUT))])

    row = Execution.objects.get(pk=on_its_way.execution_id)
    assert (BatchTask.objects.get(pk=batch.pk).status, row.status, row.auto_retries) == (
        BatchStatus.PAUSED,
        ExecutionStatus.PENDING,
        0,
    )
