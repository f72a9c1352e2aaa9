"""Claims, leases, fencing and results: the state changes runners make."""

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from batches.dify import CallResult
from batches.models import Attempt, BatchStatus, ErrorType, Execution, ExecutionStatus, Trigger
from batches.services import engine


@pytest.fixture
def running_batch(make_batch):
    return make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=2)


def ok_result(**fields):
    return CallResult(
        **{"ok": True, "outputs": {"answer": "x"}, "total_tokens": 7, "workflow_run_id": "run-1", **fields}
    )


def failed_result(error_type, **fields):
    return CallResult(ok=False, error_type=error_type, error=f"{error_type} happened", http_status=500, **fields)


def test_claim_takes_rows_in_index_order_up_to_the_batch_concurrency(running_batch):
    claims = engine.claim(running_batch.pk, "runner-a", limit=10)

    assert [claim.index for claim in claims] == [0, 1]
    assert Execution.objects.running().count() == 2


def test_second_claimer_gets_nothing_while_concurrency_is_used(running_batch):
    engine.claim(running_batch.pk, "runner-a", limit=10)

    assert engine.claim(running_batch.pk, "runner-b", limit=10) == []


def test_rows_whose_calls_ended_free_their_place_before_their_results_are_written(running_batch):
    first, second = engine.claim(running_batch.pk, "runner-a", limit=10)

    successors = engine.claim(running_batch.pk, "runner-a", limit=10, ended=[first.execution_id])

    assert [claim.index for claim in successors] == [2]
    assert engine.claim(running_batch.pk, "runner-a", limit=10, ended=[first.execution_id]) == []


def test_claim_respects_the_runner_limit(running_batch):
    assert len(engine.claim(running_batch.pk, "runner-a", limit=1)) == 1


@pytest.mark.parametrize("status", [BatchStatus.PENDING, BatchStatus.PAUSED, BatchStatus.CANCELLED])
def test_claim_takes_nothing_from_a_batch_that_is_not_running(make_batch, status):
    batch = make_batch(rows=3, status=status)

    assert engine.claim(batch.pk, "runner-a", limit=10) == []


def test_claim_skips_rows_still_in_backoff(running_batch):
    Execution.objects.filter(index=0).update(not_before=timezone.now() + timedelta(minutes=1))

    claims = engine.claim(running_batch.pk, "runner-a", limit=10)

    assert [claim.index for claim in claims] == [1, 2]


def test_success_is_recorded_with_its_attempt(running_batch):
    (claim, _) = engine.claim(running_batch.pk, "runner-a", limit=10)

    recorded = engine.record_results([(claim, ok_result())])

    row = Execution.objects.get(pk=claim.execution_id)
    assert recorded.written == 1
    assert (row.status, row.outputs, row.total_tokens, row.lease_token) == ("succeeded", {"answer": "x"}, 7, "")
    attempt = Attempt.objects.get(execution=row)
    assert (attempt.number, attempt.outcome, attempt.trigger) == (1, "succeeded", "auto")


def test_transient_failure_goes_back_to_pending_with_backoff(running_batch):
    (claim, _) = engine.claim(running_batch.pk, "runner-a", limit=10)

    engine.record_results([(claim, failed_result(ErrorType.UPSTREAM_ERROR))])

    row = Execution.objects.get(pk=claim.execution_id)
    assert row.status == ExecutionStatus.PENDING
    assert row.auto_retries == 1
    assert row.not_before is not None
    assert row.error_type == ErrorType.UPSTREAM_ERROR


def test_retry_after_decides_the_backoff(running_batch):
    (claim, _) = engine.claim(running_batch.pk, "runner-a", limit=10)
    before = timezone.now()

    engine.record_results([(claim, failed_result(ErrorType.RATE_LIMITED, retry_after=42.0))])

    delay = Execution.objects.get(pk=claim.execution_id).not_before - before
    assert timedelta(seconds=41) < delay < timedelta(seconds=44)


def test_transient_failure_without_retries_left_fails(running_batch):
    Execution.objects.update(auto_retries=2)
    (claim, _) = engine.claim(running_batch.pk, "runner-a", limit=10)

    engine.record_results([(claim, failed_result(ErrorType.TIMEOUT))])

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
    (claim, _) = engine.claim(running_batch.pk, "runner-a", limit=10)

    engine.record_results([(claim, failed_result(error_type))])

    assert Execution.objects.get(pk=claim.execution_id).status == ExecutionStatus.FAILED
    running_batch.refresh_from_db()
    assert running_batch.status == batch_status


def test_workflow_failed_is_not_retried_when_the_workflow_says_so(make_workflow, make_batch):
    workflow = make_workflow(retry_workflow_failed=False)
    batch = make_batch(rows=1, workflow=workflow, status=BatchStatus.RUNNING)
    (claim,) = engine.claim(batch.pk, "runner-a", limit=10)

    engine.record_results([(claim, failed_result(ErrorType.WORKFLOW_FAILED))])

    assert Execution.objects.get(pk=claim.execution_id).status == ExecutionStatus.FAILED


def test_a_late_result_after_the_lease_was_taken_over_is_discarded(running_batch):
    (old, _) = engine.claim(running_batch.pk, "runner-a", limit=10)
    Execution.objects.filter(pk=old.execution_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    new = next(c for c in engine.claim(running_batch.pk, "runner-b", limit=10) if c.execution_id == old.execution_id)

    late = engine.record_results([(old, ok_result())])
    engine.record_results([(new, ok_result(total_tokens=0))])

    assert (late.written, late.discarded) == (0, 1)
    attempts = list(Attempt.objects.filter(execution_id=old.execution_id).values_list("outcome", "trigger"))
    assert attempts == [("interrupted", "auto"), ("succeeded", "recovery")]


def test_taking_over_an_expired_lease_resumes_the_known_upstream_run(running_batch):
    (old, _) = engine.claim(running_batch.pk, "runner-a", limit=10)
    old.run_id, old.task_id = "run-abc", "task-abc"
    engine.store_run_ids([old])
    Execution.objects.filter(pk=old.execution_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    new = next(c for c in engine.claim(running_batch.pk, "runner-b", limit=10) if c.execution_id == old.execution_id)

    assert (new.resume_run_id, new.trigger, new.number) == ("run-abc", Trigger.RECOVERY, 2)


def test_a_row_interrupted_too_often_fails_as_interrupted(running_batch, settings):
    settings.BATCHES_MAX_INTERRUPTIONS = 1
    (old, _) = engine.claim(running_batch.pk, "runner-a", limit=10)
    Execution.objects.filter(pk=old.execution_id).update(
        interruptions=1, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    claims = engine.claim(running_batch.pk, "runner-b", limit=10)

    assert old.execution_id not in [c.execution_id for c in claims]
    row = Execution.objects.get(pk=old.execution_id)
    assert (row.status, row.error_type) == (ExecutionStatus.FAILED, ErrorType.INTERRUPTED)


def test_renewing_extends_only_the_owners_leases(running_batch):
    engine.claim(running_batch.pk, "runner-a", limit=1)
    Execution.objects.update(lease_expires_at=timezone.now())

    renewed = engine.renew_leases("runner-a", timezone.now() + timedelta(minutes=5))

    assert renewed == 1
    assert Execution.objects.running().get().lease_expires_at > timezone.now() + timedelta(minutes=5)


def test_finish_done_finishes_only_batches_with_nothing_left(make_batch):
    done = make_batch(rows=1, status=BatchStatus.RUNNING)
    busy = make_batch(rows=1, status=BatchStatus.RUNNING)
    Execution.objects.filter(batch=done).update(status=ExecutionStatus.SUCCEEDED)

    assert engine.finish_done() == 1

    done.refresh_from_db()
    busy.refresh_from_db()
    assert (done.status, busy.status) == (BatchStatus.FINISHED, BatchStatus.RUNNING)
    assert done.finished_at is not None


def test_runner_slots_are_limited_and_reusable(db, settings):
    settings.BATCHES_RUNNERS = 1

    first = engine.acquire_slot("a")
    refused = engine.acquire_slot("b")
    engine.release_slot(first, "a")

    assert (first, refused, engine.acquire_slot("b")) == (0, None, 0)


def test_an_expired_runner_slot_can_be_taken(db, settings):
    settings.BATCHES_RUNNERS = 1
    engine.acquire_slot("a", timezone.now() - timedelta(minutes=5))

    assert engine.acquire_slot("b") == 0


def test_claim_and_record_use_a_bounded_number_of_queries(make_batch, django_assert_max_num_queries):
    from batches.services import clock

    batch = make_batch(rows=50, status=BatchStatus.RUNNING, concurrency=50)
    clock.now()  # the database's clock is read every 30 s, not per claim

    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 7):  # + SET synchronous_commit
        claims = engine.claim(batch.pk, "runner-a", limit=50)
    with django_assert_max_num_queries(6):  # + looking for an upstream circuit to close
        engine.record_results([(claim, ok_result()) for claim in claims])


@pytest.mark.parametrize(("threshold", "paused"), [(None, False), (50, False), (30, True)])
def test_failure_threshold_pauses_the_batch_once_enough_rows_failed(make_batch, threshold, paused):
    batch = make_batch(rows=10, status=BatchStatus.RUNNING, concurrency=10, failure_threshold=threshold)
    batch.failure_threshold_min_rows = 5
    batch.save()
    claims = engine.claim(batch.pk, "runner-a", limit=10)
    results = [(c, failed_result(ErrorType.INVALID_INPUT) if c.index < 4 else ok_result()) for c in claims]

    engine.record_results(results)

    batch.refresh_from_db()
    assert (batch.status == BatchStatus.PAUSED) is paused


def test_a_slot_held_by_a_dead_local_process_is_taken_over(db, settings):
    import socket
    import subprocess

    settings.BATCHES_RUNNERS = 1
    gone = subprocess.Popen(["true"])
    gone.wait()
    engine.acquire_slot(f"{socket.gethostname()}:1:{gone.pid}:abc")

    assert engine.acquire_slot("someone-else") == 0


def test_a_slot_held_by_a_live_process_is_not_taken_over(db, settings):
    import os
    import socket

    settings.BATCHES_RUNNERS = 1
    engine.acquire_slot(f"{socket.gethostname()}:1:{os.getpid()}:abc")

    assert engine.acquire_slot("someone-else") is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_writing_results_does_not_wait_for_the_batch_row_a_claim_holds(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING, concurrency=2)
    claims = engine.claim(batch.pk, "runner-a", limit=2)
    db = connection.settings_dict
    other = psycopg.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or None)
    other.execute("SELECT id FROM batches_batchtask WHERE id = %s FOR UPDATE", [batch.pk])  # as a claim does
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        recorded = engine.record_results([(claim, ok_result()) for claim in claims])
    finally:
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert recorded.written == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
def test_claims_commit_without_waiting_for_the_disk_but_results_do_wait(running_batch):
    with CaptureQueriesContext(connection) as claiming:
        claims = engine.claim(running_batch.pk, "runner-a", limit=2)
    with CaptureQueriesContext(connection) as writing:
        engine.record_results([(claim, ok_result()) for claim in claims])

    asynchronous = "SET LOCAL synchronous_commit TO OFF"
    assert any(asynchronous in query["sql"] for query in claiming.captured_queries)
    assert not any(asynchronous in query["sql"] for query in writing.captured_queries)


def expire(*execution_ids):
    rows = Execution.objects.filter(pk__in=execution_ids) if execution_ids else Execution.objects.running()
    rows.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_a_second_recovery_still_knows_the_upstream_run_of_the_first(running_batch):
    (first, _) = engine.claim(running_batch.pk, "runner-a", limit=10)
    first.run_id, first.task_id = "run-abc", "task-abc"
    engine.store_run_ids([first])
    expire(first.execution_id)
    engine.claim(running_batch.pk, "runner-b", limit=10)  # interrupted again before its own run was announced
    expire(first.execution_id)

    claims = engine.claim(running_batch.pk, "runner-c", limit=10)
    third = next(c for c in claims if c.execution_id == first.execution_id)

    assert (third.resume_run_id, third.number) == ("run-abc", 3)
    assert Execution.objects.get(pk=first.execution_id).task_id == "task-abc"


def test_a_fresh_claim_forgets_the_upstream_ids_of_an_earlier_try(running_batch):
    Execution.objects.filter(index=0).update(workflow_run_id="old-run", task_id="old-task", next_trigger=Trigger.MANUAL)

    engine.claim(running_batch.pk, "runner-a", limit=1)

    assert Execution.objects.filter(index=0).values_list("workflow_run_id", "task_id").get() == ("", "")


def test_rows_failed_by_the_interruption_cap_finish_their_batch_at_once(make_batch, settings):
    settings.BATCHES_MAX_INTERRUPTIONS = 1
    batch = make_batch(rows=2, status=BatchStatus.RUNNING, concurrency=2)
    engine.claim(batch.pk, "runner-a", limit=2)
    Execution.objects.filter(index=0).update(status=ExecutionStatus.SUCCEEDED, lease_token="")
    Execution.objects.filter(index=1).update(interruptions=1)
    expire()

    assert engine.claim(batch.pk, "runner-b", limit=2) == []

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED


def test_a_runner_never_takes_over_its_own_rows_even_after_their_leases_expired(running_batch):
    mine = engine.claim(running_batch.pk, "runner-a", limit=2)
    expire()  # the database was away for longer than a lease; the calls may have succeeded meanwhile

    again = engine.claim(running_batch.pk, "runner-a", limit=10)

    assert {c.execution_id for c in again}.isdisjoint(c.execution_id for c in mine)
    assert not Attempt.objects.exists()
    assert engine.record_results([(claim, ok_result()) for claim in mine]).written == 2


def test_another_runner_still_takes_over_expired_rows(running_batch):
    mine = engine.claim(running_batch.pk, "runner-a", limit=2)
    expire()

    theirs = engine.claim(running_batch.pk, "runner-b", limit=10)

    assert {c.execution_id for c in mine} <= {c.execution_id for c in theirs}


def test_a_clock_running_a_minute_ahead_takes_over_nothing_alive(running_batch, monkeypatch):
    from batches.services import clock, recovery

    live = engine.claim(running_batch.pk, "runner-a", limit=2)
    clock.forget()
    ahead = timezone.now() + timedelta(seconds=60)
    monkeypatch.setattr(timezone, "now", lambda: ahead)

    taken = engine.claim(running_batch.pk, "runner-b", limit=10)
    recovery.sweep()

    assert taken == []
    assert not Attempt.objects.exists()
    assert engine.record_results([(claim, ok_result()) for claim in live]).written == 2


def test_backoff_is_set_from_the_database_clock(running_batch, monkeypatch):
    from batches.services import clock

    (claim, _) = engine.claim(running_batch.pk, "runner-a", limit=10)
    clock.forget()
    real_now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: real_now + timedelta(seconds=60))

    engine.record_results([(claim, failed_result(ErrorType.RATE_LIMITED, retry_after=5.0))])

    not_before = Execution.objects.get(pk=claim.execution_id).not_before
    assert real_now + timedelta(seconds=3) < not_before < real_now + timedelta(seconds=8)
