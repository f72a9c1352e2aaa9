"""The recovery sweep: expired leases, batches left running with nothing to do, dry runs."""

from datetime import timedelta

from django.utils import timezone

from batches.models import Attempt, BatchStatus, Execution, ExecutionStatus, Trigger
from batches.services import engine, recovery


def expire_all_leases():
    Execution.objects.running().update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_sweep_sends_expired_leases_back_to_pending_with_an_interrupted_attempt(make_batch):
    batch = make_batch(rows=3, status=BatchStatus.RUNNING, concurrency=2)
    engine.claim(batch.pk, "dead-runner", limit=2)
    expire_all_leases()

    (report,) = recovery.sweep()

    assert (report["interrupted"], report["reset"], report["runner_enqueued"]) == (2, 2, True)
    assert Execution.objects.pending().count() == 3
    assert Execution.objects.filter(next_trigger=Trigger.RECOVERY).count() == 2
    assert Attempt.objects.filter(outcome=Attempt.Outcome.INTERRUPTED).count() == 2


def test_sweep_twice_interrupts_each_row_once(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    engine.claim(batch.pk, "dead-runner", limit=2)
    expire_all_leases()

    recovery.sweep()
    recovery.sweep()

    assert Attempt.objects.count() == 2


def test_sweep_leaves_live_leases_alone(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    engine.claim(batch.pk, "live-runner", limit=2)

    recovery.sweep()

    assert Execution.objects.running().count() == 2


def test_sweep_finishes_a_running_batch_with_nothing_left(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    Execution.objects.update(status=ExecutionStatus.SUCCEEDED)

    (report,) = recovery.sweep()

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED
    assert (report["finished"], report["runner_enqueued"]) == (True, False)


def test_dry_run_reports_and_changes_nothing(make_batch):
    stuck = make_batch(rows=2, status=BatchStatus.RUNNING)
    done = make_batch(rows=1, status=BatchStatus.RUNNING)
    engine.claim(stuck.pk, "dead-runner", limit=2)
    Execution.objects.filter(batch=done).update(status=ExecutionStatus.SUCCEEDED)
    expire_all_leases()

    report = recovery.sweep(dry_run=True)

    assert [(r["id"], r["interrupted"], r["finished"]) for r in report] == [(stuck.pk, 2, False), (done.pk, 0, True)]
    assert Execution.objects.running().count() == 2
    done.refresh_from_db()
    assert done.status == BatchStatus.RUNNING
    assert not Attempt.objects.exists()
