"""The results a runner has not written yet: when they are due, what a claim may refill, and how they are written."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, OperationalError

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.dify.types import CallResult
from batches.models import Attempt, Execution
from batches.runner.backlog import WRITE_WHEN_QUIET, WRITE_WITHIN, ResultBacklog
from batches.services import claims, leases, results


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def claim_for(execution_id: int, batch_id: int = 1) -> leases.Claim:
    return leases.Claim(execution_id, batch_id, 1, execution_id, {}, "token", 1, "auto", 0, 2, True)


def ok() -> CallResult:
    return CallResult(ok=True, outputs={"answer": "x"})


def failed() -> CallResult:
    return CallResult(ok=False, error_type=ErrorType.UPSTREAM_ERROR, error="upstream error", http_status=500)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def claimed(make_batch: Any) -> list[leases.Claim]:
    batch = make_batch(rows=3, status=BatchStatus.RUNNING, concurrency=3)
    return claims.claim(batch.pk, owner="runner-a", limit=3)


def test_an_empty_backlog_is_never_due(clock: Clock) -> None:
    backlog = ResultBacklog(clock)

    assert not backlog.write_due(more_coming=False)


def test_results_wait_while_calls_keep_ending_and_are_due_once_they_stop(clock: Clock) -> None:
    backlog = ResultBacklog(clock)
    backlog.add(claim_for(1), ok())

    waiting = backlog.write_due(more_coming=True)
    clock.now += WRITE_WHEN_QUIET + 0.001

    assert (waiting, backlog.write_due(more_coming=True)) == (False, True)


def test_results_are_due_within_a_bound_while_calls_never_stop_ending(clock: Clock) -> None:
    backlog = ResultBacklog(clock)
    first_end = clock.now
    while not backlog.write_due(more_coming=True):
        backlog.add(claim_for(len(backlog) + 1), ok())
        clock.now += WRITE_WHEN_QUIET / 2  # never quiet for long enough

    assert WRITE_WITHIN <= clock.now - first_end < WRITE_WITHIN + WRITE_WHEN_QUIET / 2


def test_results_are_due_at_once_when_no_more_calls_are_coming(clock: Clock) -> None:
    backlog = ResultBacklog(clock)
    backlog.add(claim_for(1), ok())

    assert backlog.write_due(more_coming=False)


def test_a_failed_result_is_told_apart(clock: Clock) -> None:
    backlog = ResultBacklog(clock)
    backlog.add(claim_for(1), ok())
    only_ok = backlog.failed()

    backlog.add(claim_for(2), failed())

    assert (only_ok, backlog.failed()) == (False, True)


def test_a_claim_refills_a_batchs_ended_rows_once(clock: Clock) -> None:
    backlog = ResultBacklog(clock)
    for execution_id, batch_id in [(1, 7), (2, 8), (3, 7)]:
        backlog.add(claim_for(execution_id, batch_id), ok())

    ended = backlog.ended(7)
    backlog.mark(ended)

    assert (ended, backlog.ended(7), backlog.ended(8)) == ([1, 3], [], [2])


def test_writing_records_every_result_and_empties_the_backlog(claimed: list[leases.Claim], clock: Clock) -> None:
    backlog = ResultBacklog(clock)
    first, second, third = claimed
    backlog.add(first, ok())
    backlog.add(second, failed())
    backlog.mark([first.execution_id])
    backlog.add(third, ok())  # a result that came after the claim: not marked

    recorded = backlog.write()

    assert (recorded.written, recorded.batch_ids) == (3, {first.batch_id})
    statuses = dict(Execution.objects.values_list("pk", "status"))
    assert [statuses[c.execution_id] for c in claimed] == ["succeeded", "pending", "succeeded"]
    assert (len(backlog), backlog.marked, backlog.ended(first.batch_id)) == (0, set(), [])


def test_a_database_outage_keeps_the_results_for_later(
    claimed: list[leases.Claim], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(outcomes: Any, *, now: Any = None) -> results.Recorded:
        raise OperationalError("server closed the connection unexpectedly")

    backlog = ResultBacklog(clock)
    backlog.add(claimed[0], ok())
    backlog.mark([claimed[0].execution_id])
    monkeypatch.setattr(results, "record_results", away)

    with pytest.raises(OperationalError):
        backlog.write()

    assert (len(backlog), backlog.marked) == (1, {claimed[0].execution_id})
    assert Execution.objects.get(pk=claimed[0].execution_id).status == ExecutionStatus.RUNNING


def test_a_result_the_database_refuses_is_recorded_as_a_failed_try_and_the_others_as_they_are(
    claimed: list[leases.Claim], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = results.record_results

    def refuse_successes(outcomes: Any, *, now: Any = None) -> results.Recorded:
        if any(result.ok for _, result in outcomes):
            raise IntegrityError("new row violates check constraint")
        return real_record(outcomes, now=now)

    backlog = ResultBacklog(clock)
    refused, other = claimed[:2]
    backlog.add(refused, ok())
    backlog.add(other, failed())
    monkeypatch.setattr(results, "record_results", refuse_successes)

    recorded = backlog.write()

    assert recorded.written == 2
    row = Execution.objects.get(pk=refused.execution_id)
    assert (row.status, row.error_type) == (ExecutionStatus.PENDING, ErrorType.BAD_RESPONSE)
    assert "could not be recorded" in Attempt.objects.get(execution=row).error
    assert Execution.objects.get(pk=other.execution_id).error_type == ErrorType.UPSTREAM_ERROR
    assert len(backlog) == 0
