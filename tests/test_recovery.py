"""The recovery sweep: expired leases, batches left running with nothing to do, dry runs."""

import os
from datetime import timedelta

from django.utils import timezone

from batches.models import Attempt, BatchStatus, BatchTask, Execution, ExecutionStatus, Trigger
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


def test_sweep_reopens_a_finished_or_cancelled_batch_left_with_rows_to_run(make_batch):
    finished = make_batch(rows=2, status=BatchStatus.FINISHED)
    cancelled = make_batch(rows=2, status=BatchStatus.CANCELLED)
    done = make_batch(rows=1, status=BatchStatus.FINISHED)
    Execution.objects.filter(index=0).update(status=ExecutionStatus.SUCCEEDED)

    report = {r["id"]: r for r in recovery.sweep()}

    statuses = [BatchTask.objects.get(pk=b.pk).status for b in (finished, cancelled, done)]
    assert statuses == ["running", "running", "finished"]
    assert report[finished.pk]["reopened"] and report[cancelled.pk]["runner_enqueued"]
    assert done.pk not in report


def test_sweep_takes_over_at_once_the_rows_of_a_dead_process_of_this_machine_only(make_batch):
    import subprocess

    from batches.services import nodes

    gone = subprocess.Popen(["true"])
    gone.wait()
    batch = make_batch(rows=3, status=BatchStatus.RUNNING, concurrency=3)
    engine.claim(batch.pk, nodes.owner_name(parent_pid=1, pid=gone.pid), limit=1)
    engine.claim(batch.pk, "other-machine:1:2:tag:abc", limit=1)
    engine.claim(batch.pk, nodes.owner_name(parent_pid=1, pid=os.getpid()), limit=1)

    (report,) = recovery.sweep()

    assert report["interrupted"] == 1
    assert Execution.objects.running().count() == 2
