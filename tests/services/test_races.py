"""Retry, finish, cancel and result writes racing each other on PostgreSQL (two connections, real row locks)."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection, transaction

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.types import CallResult
from batches.models import Attempt, BatchTask, Execution
from batches.services import claims, lifecycle, results, transitions

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and concurrent snapshots are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


class Held:
    """Runs `work` in a thread inside a transaction kept open (its locks held) until released."""

    def __init__(self, work):
        self.entered, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(work,))
        self.thread.start()
        assert self.entered.wait(10)

    def _run(self, work):
        try:
            with transaction.atomic():
                work()
                self.entered.set()
                self.release.wait(10)
        finally:
            connection.close()

    def finish(self):
        self.release.set()
        self.thread.join(10)


def in_thread(work):
    def run():
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def race(first, second):
    """`first` holds its transaction open while `second` starts; then `first` commits and both end."""
    held = Held(first)
    other = in_thread(second)
    time.sleep(0.5)  # long enough for `second` to run to its end, or to wait on a lock `first` holds
    held.finish()
    other.join(10)
    assert not other.is_alive()


def assert_no_closed_batch_has_rows_to_run(batch):
    batch.refresh_from_db()
    statuses = set(Execution.objects.filter(batch=batch).values_list("status", flat=True))
    if batch.status in (BatchStatus.FINISHED, BatchStatus.CANCELLED):
        assert statuses.isdisjoint({ExecutionStatus.PENDING, ExecutionStatus.RUNNING}), (batch.status, statuses)


def test_a_retry_racing_the_finish_of_its_batch_leaves_the_batch_running(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    Execution.objects.filter(batch=batch, index=0).update(status=ExecutionStatus.SUCCEEDED)
    Execution.objects.filter(batch=batch, index=1).update(status=ExecutionStatus.FAILED, error_type="timeout")

    race(
        lambda: lifecycle.retry_executions(Execution.objects.filter(batch=batch, index=1)),
        lambda: transitions.finish_done({batch.pk}),
    )

    assert_no_closed_batch_has_rows_to_run(batch)
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING


def test_a_retry_racing_a_cancel_leaves_no_row_to_run_in_the_cancelled_batch(make_batch):
    batch = make_batch(rows=3, status=BatchStatus.RUNNING)
    Execution.objects.filter(batch=batch, index=0).update(status=ExecutionStatus.FAILED, error_type="timeout")

    race(
        lambda: lifecycle.retry_executions(Execution.objects.filter(batch=batch, index=0)),
        lambda: lifecycle.cancel_batch(batch.pk),
    )

    assert_no_closed_batch_has_rows_to_run(batch)
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.CANCELLED


def test_a_cancel_racing_a_retry_of_a_finished_batch_leaves_no_row_to_run(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.FAILED, error_type="timeout")

    race(
        lambda: lifecycle.retry_executions(Execution.objects.filter(batch=batch)),
        lambda: lifecycle.cancel_batch(batch.pk),
    )

    assert_no_closed_batch_has_rows_to_run(batch)


def test_a_cancel_racing_a_result_write_leaves_one_attempt_per_number(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING, concurrency=2)
    claimed = claims.claim(batch.pk, owner="runner-a", limit=2)

    race(
        lambda: results.record_results([(claimed[0], CallResult(ok=True, outputs={"a": 1}))]),
        lambda: lifecycle.cancel_batch(batch.pk),
    )

    numbers = Counter(Attempt.objects.filter(execution__batch=batch).values_list("execution_id", "number"))
    assert set(numbers.values()) == {1}
    outcomes = dict(Attempt.objects.filter(execution__batch=batch).values_list("execution_id", "outcome"))
    assert outcomes == {claimed[0].execution_id: "succeeded", claimed[1].execution_id: "cancelled"}
