"""Refills: the claim that replaces a runner's ended calls (one statement on PostgreSQL, steps on SQLite), held to
the ORM claim's answers."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, Trigger
from batches.models import BatchTask, Execution, WorkflowThrottle
from batches.services import claims, leases, refills, transitions
from tests.services.test_races import race

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statement")


def refill(batch, *, owner="runner-a", limit, ended):
    now = timezone.now()
    rows, _ = refills.refill(
        batch.pk, owner=owner, limit=limit, now=now, ended=ended, token="t", expires=leases.lease_expiry(now)
    )
    return [row["index"] for row in rows]


def calls_held(batch):
    """Running rows that hold a call: those not marked as ended."""
    return Execution.objects.filter(batch=batch).running().filter(not_before__isnull=True).count()


def test_a_refill_replaces_the_ended_calls_with_the_next_due_rows(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)

    successors = claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=[first.execution_id], take_over=False)

    assert [claim.index for claim in successors] == [2]
    assert Execution.objects.get(pk=first.execution_id).not_before is not None  # marked: it holds no call
    assert calls_held(running_batch) == 2


def test_a_take_over_that_finds_nothing_stale_is_a_refill(running_batch, django_assert_num_queries):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)

    # The look for stale rows, then the statement (SQLite: a savepoint around its five steps); no exclusive claim.
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 8):
        successors = claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=[first.execution_id])

    assert [claim.index for claim in successors] == [2]


def test_a_take_over_with_a_stale_row_is_the_exclusive_claim_and_takes_it_over(running_batch):
    first, second = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    expired = timezone.now() - timedelta(seconds=1)
    Execution.objects.filter(pk=second.execution_id).update(lease_owner="runner-b", lease_expires_at=expired)

    successors = claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=[first.execution_id])

    assert [(claim.index, claim.trigger) for claim in successors] == [(1, Trigger.RECOVERY)]
    assert Execution.objects.get(pk=second.execution_id).lease_owner == "runner-a"


def test_a_refill_takes_no_more_rows_than_the_places_it_frees(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)

    assert refill(running_batch, limit=2, ended=[first.execution_id]) == [2]
    assert calls_held(running_batch) == 2


def test_a_refill_takes_fewer_rows_once_the_concurrency_was_lowered(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    BatchTask.objects.filter(pk=running_batch.pk).update(concurrency=1)

    assert refill(running_batch, limit=1, ended=[first.execution_id]) == []
    assert calls_held(running_batch) == 1


def test_an_ended_row_another_runner_took_over_still_counts_as_busy(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    Execution.objects.filter(pk=first.execution_id).update(lease_owner="runner-b")  # taken over meanwhile

    assert refill(running_batch, limit=1, ended=[first.execution_id]) == []
    assert Execution.objects.get(pk=first.execution_id).not_before is None


def limit_rpm(batch):
    batch.workflow.rpm_limit = 60
    batch.workflow.save()


def open_circuit(batch):
    WorkflowThrottle.objects.create(workflow=batch.workflow, circuit=CircuitState.OPEN)


def limit_adaptively(batch):
    WorkflowThrottle.objects.create(workflow=batch.workflow, concurrency_limit=1.0)


def pause(batch):
    BatchTask.objects.filter(pk=batch.pk).update(status=BatchStatus.PAUSED)


@pytest.mark.parametrize("change", [limit_rpm, open_circuit, limit_adaptively, pause])
def test_a_throttled_or_stopped_batch_is_left_to_the_exclusive_claim_with_nothing_written(running_batch, change):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    change(running_batch)

    assert refill(running_batch, limit=1, ended=[first.execution_id]) == []
    assert Execution.objects.get(pk=first.execution_id).not_before is None


def test_a_throttled_batch_is_still_refilled_by_the_exclusive_claim(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    limit_adaptively(running_batch)
    WorkflowThrottle.objects.filter(workflow=running_batch.workflow).update(concurrency_limit=2.0)

    successors = claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=[first.execution_id], take_over=False)

    assert [claim.index for claim in successors] == [2]
    assert successors[0].adaptive


COPIED = ("index", "inputs", "number", "trigger", "auto_retries", "max_retries", "retry_workflow_failed")


def prepare_twin(make_batch):
    """A running batch whose next rows are a recovered one (its run id kept) and a timed-out one (resumable)."""
    batch = make_batch(rows=4, status=BatchStatus.RUNNING, concurrency=2, max_retries=3)
    rows = Execution.objects.filter(batch=batch)
    rows.filter(index=2).update(next_trigger=Trigger.RECOVERY, workflow_run_id="run-2", task_id="task-2")
    rows.filter(index=2).update(attempt_count=1, interruptions=1)
    rows.filter(index=3).update(error_type="timeout", workflow_run_id="run-3", auto_retries=1, attempt_count=1)
    return batch


def test_a_refill_hands_out_the_same_claims_as_the_orm_claim(make_batch):
    by_statement, by_orm = prepare_twin(make_batch), prepare_twin(make_batch)
    answers = []
    for batch, take_over in ((by_statement, False), (by_orm, True)):
        ended = [claim.execution_id for claim in claims.claim(batch.pk, owner="runner-a", limit=2)]
        answers.append(claims.claim(batch.pk, owner="runner-a", limit=2, ended=ended, take_over=take_over))

    def seen(claimed):
        return [({name: getattr(c, name) for name in COPIED}, c.resume_run_id, c.adaptive) for c in claimed]

    assert seen(answers[0]) == seen(answers[1])
    assert [c.resume_run_id for c in answers[0]] == ["run-2", "run-3"]
    kept = Execution.objects.filter(batch=by_statement).order_by("index").values_list("workflow_run_id", "task_id")
    assert list(kept)[2:] == [("run-2", "task-2"), ("run-3", "")]  # every row keeps its run id, recovered ones the task


@postgresql_only
def test_a_refill_commits_without_waiting_for_the_disk(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)

    with CaptureQueriesContext(connection) as claiming:
        claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=[first.execution_id], take_over=False)

    assert any("set_config('synchronous_commit', 'off', true)" in query["sql"] for query in claiming.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_refills_of_several_runners_at_once_never_exceed_the_concurrency(make_batch):
    batch = make_batch(rows=400, status=BatchStatus.RUNNING, concurrency=40)
    owners = [f"runner-{n}" for n in range(4)]
    held = {owner: claims.claim(batch.pk, owner=owner, limit=10) for owner in owners}
    start, seen = threading.Barrier(len(owners)), []

    def run(owner):
        try:
            for _ in range(10):
                start.wait(10)
                ended, held[owner] = held[owner][:5], held[owner][5:]
                held[owner] += claims.claim(
                    batch.pk, owner=owner, limit=5, ended=[c.execution_id for c in ended], take_over=False
                )
                seen.append(calls_held(batch))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert max(seen) <= 40
    assert sum(len(mine) for mine in held.values()) == calls_held(batch) == 40


@pytest.mark.django_db(transaction=True)
def test_a_refill_waits_for_a_pause_in_progress_and_then_claims_nothing(make_batch):
    batch = make_batch(rows=5, status=BatchStatus.RUNNING, concurrency=2)
    first, _ = claims.claim(batch.pk, owner="runner-a", limit=2)
    claimed = []

    def refill_after():
        claimed.extend(claims.claim(batch.pk, owner="runner-a", limit=1, ended=[first.execution_id], take_over=False))

    race(lambda: transitions.pause(batch.pk, reason="staff"), refill_after)

    assert claimed == []
    assert Execution.objects.filter(batch=batch).running().count() == 2


def test_a_refill_skips_rows_still_in_backoff(running_batch):
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    Execution.objects.filter(batch=running_batch, index=2).update(not_before=timezone.now() + timedelta(minutes=1))

    assert refill(running_batch, limit=1, ended=[first.execution_id]) == [3]


def test_rows_refilled_reach_the_runner_even_when_the_rest_of_its_claim_fails(running_batch, monkeypatch):
    from django.db import OperationalError

    ended = [claim.execution_id for claim in claims.claim(running_batch.pk, owner="runner-a", limit=2)]
    Execution.objects.filter(batch=running_batch, index__gt=2).update(status="succeeded")  # one due row left

    def database_gone(*args):
        raise OperationalError("the database went away")

    monkeypatch.setattr(claims, "_claim_exclusive", database_gone)
    refilled = claims.claim(running_batch.pk, owner="runner-a", limit=2, ended=ended, take_over=False)

    assert [claim.index for claim in refilled] == [2]
    with pytest.raises(OperationalError):  # nothing refilled: the runner hears of the outage
        claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=[refilled[0].execution_id], take_over=False)
