"""Recording results: success, automatic retry with backoff, final failures, pauses, fencing, query budget."""

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.models import Attempt, Execution
from batches.services import claims, results
from tests.services.support import failed_result, ok_result


def test_success_is_recorded_with_its_attempt(running_batch):
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    recorded = results.record_results([(claim, ok_result())])

    row = Execution.objects.get(pk=claim.execution_id)
    assert recorded.written == 1
    assert (row.status, row.outputs, row.total_tokens, row.lease_token) == ("succeeded", {"answer": "x"}, 7, "")
    attempt = Attempt.objects.get(execution=row)
    assert (attempt.number, attempt.outcome, attempt.trigger) == (1, "succeeded", "auto")


def test_transient_failure_goes_back_to_pending_with_backoff(running_batch):
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    results.record_results([(claim, failed_result(ErrorType.UPSTREAM_ERROR))])

    row = Execution.objects.get(pk=claim.execution_id)
    assert row.status == ExecutionStatus.PENDING
    assert row.auto_retries == 1
    assert row.not_before is not None
    assert row.error_type == ErrorType.UPSTREAM_ERROR


def test_retry_after_decides_the_backoff(running_batch):
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)
    before = timezone.now()

    results.record_results([(claim, failed_result(ErrorType.RATE_LIMITED, retry_after=42.0))])

    delay = Execution.objects.get(pk=claim.execution_id).not_before - before
    assert timedelta(seconds=41) < delay < timedelta(seconds=44)


def test_transient_failure_without_retries_left_fails(running_batch):
    Execution.objects.update(auto_retries=2)
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    results.record_results([(claim, failed_result(ErrorType.TIMEOUT))])

    assert Execution.objects.get(pk=claim.execution_id).status == ExecutionStatus.FAILED


@pytest.mark.parametrize(
    ("error_type", "batch_status"),
    [
        (ErrorType.INVALID_INPUT, BatchStatus.RUNNING),
        (ErrorType.AUTH, BatchStatus.PAUSED),
        (ErrorType.APP_ERROR, BatchStatus.PAUSED),
    ],
)
def test_non_retryable_failure_fails_at_once_and_pauses_for_app_problems(running_batch, error_type, batch_status):
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    results.record_results([(claim, failed_result(error_type))])

    assert Execution.objects.get(pk=claim.execution_id).status == ExecutionStatus.FAILED
    running_batch.refresh_from_db()
    assert running_batch.status == batch_status


def test_workflow_failed_is_not_retried_when_the_workflow_says_so(make_workflow, make_batch):
    workflow = make_workflow(retry_workflow_failed=False)
    batch = make_batch(rows=1, workflow=workflow, status=BatchStatus.RUNNING)
    (claim,) = claims.claim(batch.pk, owner="runner-a", limit=10)

    results.record_results([(claim, failed_result(ErrorType.WORKFLOW_FAILED))])

    assert Execution.objects.get(pk=claim.execution_id).status == ExecutionStatus.FAILED


def test_a_late_result_after_the_lease_was_taken_over_is_discarded(running_batch):
    (old, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)
    Execution.objects.filter(pk=old.execution_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    new = next(
        c for c in claims.claim(running_batch.pk, owner="runner-b", limit=10) if c.execution_id == old.execution_id
    )

    late = results.record_results([(old, ok_result())])
    results.record_results([(new, ok_result(total_tokens=0))])

    assert (late.written, late.discarded) == (0, 1)
    attempts = list(Attempt.objects.filter(execution_id=old.execution_id).values_list("outcome", "trigger"))
    assert attempts == [("interrupted", "auto"), ("succeeded", "recovery")]


def test_claim_and_record_use_a_bounded_number_of_queries(make_batch, django_assert_max_num_queries):
    from batches.db import clock

    batch = make_batch(rows=50, status=BatchStatus.RUNNING, concurrency=50)
    clock.now()  # the database's clock is read every 30 s, not per claim

    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 7):  # + SET synchronous_commit
        claimed = claims.claim(batch.pk, owner="runner-a", limit=50)
    with django_assert_max_num_queries(6):  # + looking for an upstream circuit to close
        results.record_results([(claim, ok_result()) for claim in claimed])


@pytest.mark.parametrize(("threshold", "paused"), [(None, False), (50, False), (30, True)])
def test_failure_threshold_pauses_the_batch_once_enough_rows_failed(make_batch, threshold, paused):
    batch = make_batch(rows=10, status=BatchStatus.RUNNING, concurrency=10, failure_threshold=threshold)
    batch.failure_threshold_min_rows = 5
    batch.save()
    claimed = claims.claim(batch.pk, owner="runner-a", limit=10)
    outcomes = [(c, failed_result(ErrorType.INVALID_INPUT) if c.index < 4 else ok_result()) for c in claimed]

    results.record_results(outcomes)

    batch.refresh_from_db()
    assert (batch.status == BatchStatus.PAUSED) is paused


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_writing_results_does_not_wait_for_the_batch_row_a_claim_holds(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING, concurrency=2)
    claimed = claims.claim(batch.pk, owner="runner-a", limit=2)
    db = connection.settings_dict
    other = psycopg.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or None)
    other.execute("SELECT id FROM batches_batchtask WHERE id = %s FOR UPDATE", [batch.pk])  # as a claim does
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        recorded = results.record_results([(claim, ok_result()) for claim in claimed])
    finally:
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert recorded.written == 2


def test_backoff_is_set_from_the_database_clock(running_batch, monkeypatch):
    from batches.db import clock

    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)
    clock.forget()
    real_now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: real_now + timedelta(seconds=60))

    results.record_results([(claim, failed_result(ErrorType.RATE_LIMITED, retry_after=5.0))])

    not_before = Execution.objects.get(pk=claim.execution_id).not_before
    assert real_now + timedelta(seconds=3) < not_before < real_now + timedelta(seconds=8)


def test_a_try_that_announced_no_run_keeps_the_rows_known_run_id(running_batch):
    """A failed look-up's retry, or a call refused before any run: the earlier run id must survive for its look-up."""
    Execution.objects.filter(batch=running_batch, index=0).update(error_type="bad_response", workflow_run_id="run-1")
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    results.record_results([(claim, failed_result(ErrorType.CONNECTION))])

    row = Execution.objects.get(pk=claim.execution_id)
    assert (row.status, row.error_type, row.workflow_run_id) == ("pending", "connection", "run-1")


def test_a_failed_look_up_is_recorded_with_the_run_it_asked_about(running_batch):
    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    results.record_results([(claim, failed_result(ErrorType.UPSTREAM_ERROR, workflow_run_id="run-7"))])

    assert Attempt.objects.get(execution_id=claim.execution_id).workflow_run_id == "run-7"
    assert Execution.objects.get(pk=claim.execution_id).workflow_run_id == "run-7"
