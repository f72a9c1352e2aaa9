"""Claims: concurrency, order, backoff, take-over of expired and dead rows, runner slots, the clock."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from batches.choices import BatchStatus
from batches.models import Attempt, Execution
from batches.services import claims, results
from tests.services.support import expire, ok_result


def test_claim_takes_rows_in_index_order_up_to_the_batch_concurrency(running_batch):
    claimed = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    assert [claim.index for claim in claimed] == [0, 1]
    assert Execution.objects.running().count() == 2


def test_second_claimer_gets_nothing_while_concurrency_is_used(running_batch):
    claims.claim(running_batch.pk, owner="runner-a", limit=10)

    assert claims.claim(running_batch.pk, owner="runner-b", limit=10) == []


def test_rows_whose_calls_ended_free_their_place_before_their_results_are_written(running_batch):
    first, second = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    successors = claims.claim(running_batch.pk, owner="runner-a", limit=10, ended=[first.execution_id])

    assert [claim.index for claim in successors] == [2]
    assert claims.claim(running_batch.pk, owner="runner-a", limit=10, ended=[first.execution_id]) == []


def test_claim_respects_the_runner_limit(running_batch):
    assert len(claims.claim(running_batch.pk, owner="runner-a", limit=1)) == 1


@pytest.mark.parametrize("status", [BatchStatus.PENDING, BatchStatus.PAUSED, BatchStatus.CANCELLED])
def test_claim_takes_nothing_from_a_batch_that_is_not_running(make_batch, status):
    batch = make_batch(rows=3, status=status)

    assert claims.claim(batch.pk, owner="runner-a", limit=10) == []


def test_claim_skips_rows_still_in_backoff(running_batch):
    Execution.objects.filter(index=0).update(not_before=timezone.now() + timedelta(minutes=1))

    claimed = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    assert [claim.index for claim in claimed] == [1, 2]


def test_runner_slots_are_limited_and_reusable(db, settings):
    settings.BATCHES_RUNNERS = 1

    first = claims.acquire_slot("a")
    refused = claims.acquire_slot("b")
    claims.release_slot(first, owner="a")

    assert (first, refused, claims.acquire_slot("b")) == (0, None, 0)


def test_an_expired_runner_slot_can_be_taken(db, settings):
    settings.BATCHES_RUNNERS = 1
    claims.acquire_slot("a", now=timezone.now() - timedelta(minutes=5))

    assert claims.acquire_slot("b") == 0


def test_a_slot_held_by_a_dead_local_process_is_taken_over(db, settings):
    import subprocess

    from batches.cluster import nodes

    settings.BATCHES_RUNNERS = 1
    gone = subprocess.Popen(["true"])
    gone.wait()
    claims.acquire_slot(nodes.owner_name(parent_pid=1, pid=gone.pid))

    assert claims.acquire_slot("someone-else") == 0


def test_a_slot_held_by_a_live_process_is_not_taken_over(db, settings):
    import os
    import socket

    settings.BATCHES_RUNNERS = 1
    claims.acquire_slot(f"{socket.gethostname()}:1:{os.getpid()}:abc")

    assert claims.acquire_slot("someone-else") is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
def test_claims_commit_without_waiting_for_the_disk_but_results_do_wait(running_batch):
    with CaptureQueriesContext(connection) as claiming:
        claimed = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    with CaptureQueriesContext(connection) as writing:
        results.record_results([(claim, ok_result()) for claim in claimed])

    asynchronous = "SET LOCAL synchronous_commit TO OFF"
    assert any(asynchronous in query["sql"] for query in claiming.captured_queries)
    assert not any(asynchronous in query["sql"] for query in writing.captured_queries)


def test_a_runner_never_takes_over_its_own_rows_even_after_their_leases_expired(running_batch):
    mine = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    expire()  # the database was away for longer than a lease; the calls may have succeeded meanwhile

    again = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    assert {c.execution_id for c in again}.isdisjoint(c.execution_id for c in mine)
    assert not Attempt.objects.exists()
    assert results.record_results([(claim, ok_result()) for claim in mine]).written == 2


def test_another_runner_still_takes_over_expired_rows(running_batch):
    mine = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    expire()

    theirs = claims.claim(running_batch.pk, owner="runner-b", limit=10)

    assert {c.execution_id for c in mine} <= {c.execution_id for c in theirs}


def test_a_clock_running_a_minute_ahead_takes_over_nothing_alive(running_batch, monkeypatch):
    from batches.db import clock
    from batches.services import recovery

    live = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    clock.forget()
    ahead = timezone.now() + timedelta(seconds=60)
    monkeypatch.setattr(timezone, "now", lambda: ahead)

    taken = claims.claim(running_batch.pk, owner="runner-b", limit=10)
    recovery.sweep()

    assert taken == []
    assert not Attempt.objects.exists()
    assert results.record_results([(claim, ok_result()) for claim in live]).written == 2


@pytest.mark.parametrize(
    ("error_type", "looked_up"),
    [
        ("bad_response", True),  # a stream cut after the run started
        ("connection", True),  # the look-up was refused
        ("upstream_error", True),  # the look-up got a gateway's 502
        ("rate_limited", True),  # the look-up got a 429
        ("", True),  # a manual retry
        ("workflow_failed", False),  # the run's own end was seen: it failed
    ],
)
def test_a_known_run_is_looked_up_before_paying_again_unless_it_was_seen_to_fail(running_batch, error_type, looked_up):
    Execution.objects.filter(batch=running_batch, index=0).update(error_type=error_type, workflow_run_id="run-1")

    (claim, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)

    assert claim.resume_run_id == ("run-1" if looked_up else "")


@pytest.mark.parametrize("take_over", [True, False], ids=["exclusive", "refill"])
def test_a_worker_killed_during_the_look_up_leaves_the_run_id_for_the_next_look_up(running_batch, take_over):
    Execution.objects.filter(batch=running_batch, index=2).update(error_type="connection", workflow_run_id="run-1")
    first, _ = claims.claim(running_batch.pk, owner="runner-a", limit=2)
    ended = [first.execution_id]
    (retry,) = claims.claim(running_batch.pk, owner="runner-a", limit=1, ended=ended, take_over=take_over)
    assert retry.resume_run_id == "run-1"
    expire(retry.execution_id)

    taken = claims.claim(running_batch.pk, owner="runner-b", limit=5)

    assert [c.resume_run_id for c in taken if c.execution_id == retry.execution_id] == ["run-1"]
