"""The recovery sweep, and a probe of the upstream asked for by staff."""

import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ExecutionStatus, Trigger
from batches.models import Attempt, BatchTask, Execution, WorkflowThrottle
from batches.services import claims, recovery
from fakedify.harness import free_port, running_fake_dify


def expire_all_leases():
    Execution.objects.running().update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_sweep_sends_expired_leases_back_to_pending_with_an_interrupted_attempt(make_batch):
    batch = make_batch(rows=3, status=BatchStatus.RUNNING, concurrency=2)
    claims.claim(batch.pk, owner="dead-runner", limit=2)
    expire_all_leases()

    (report,) = recovery.sweep()

    assert (report["interrupted"], report["reset"], report["runner_enqueued"]) == (2, 2, True)
    assert Execution.objects.pending().count() == 3
    assert Execution.objects.filter(next_trigger=Trigger.RECOVERY).count() == 2
    assert Attempt.objects.filter(outcome=Attempt.Outcome.INTERRUPTED).count() == 2


def test_sweep_twice_interrupts_each_row_once(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    claims.claim(batch.pk, owner="dead-runner", limit=2)
    expire_all_leases()

    recovery.sweep()
    recovery.sweep()

    assert Attempt.objects.count() == 2


def test_sweep_leaves_live_leases_alone(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.RUNNING)
    claims.claim(batch.pk, owner="live-runner", limit=2)

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
    claims.claim(stuck.pk, owner="dead-runner", limit=2)
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

    from batches.cluster import nodes

    gone = subprocess.Popen(["true"])
    gone.wait()
    batch = make_batch(rows=3, status=BatchStatus.RUNNING, concurrency=3)
    claims.claim(batch.pk, owner=nodes.owner_name(parent_pid=1, pid=gone.pid), limit=1)
    claims.claim(batch.pk, owner="other-machine:1:2:tag:abc", limit=1)
    claims.claim(batch.pk, owner=nodes.owner_name(parent_pid=1, pid=os.getpid()), limit=1)

    (report,) = recovery.sweep()

    assert report["interrupted"] == 1
    assert Execution.objects.running().count() == 2


def probe_upstream(name: str) -> str:
    out = StringIO()
    call_command("probe_upstream", name, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def open_circuit(workflow) -> None:
    now = timezone.now()
    WorkflowThrottle.objects.create(
        workflow=workflow,
        circuit=CircuitState.OPEN,
        circuit_since=now,
        outage_streak=8,
        next_probe_at=now + timedelta(minutes=1),
        probe_backoff=60,
    )


def test_probe_closes_the_circuit_when_dify_answers(make_workflow):
    with running_fake_dify() as fake:
        workflow = make_workflow(base_url=fake.url)
        open_circuit(workflow)

        printed = probe_upstream(workflow.name)

    assert printed == "closed"
    assert WorkflowThrottle.objects.get().circuit == CircuitState.CLOSED


def test_probe_keeps_the_circuit_open_when_nothing_listens(make_workflow):
    workflow = make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1")
    open_circuit(workflow)

    printed = probe_upstream(workflow.name)

    throttle = WorkflowThrottle.objects.get()
    assert printed == "open"
    assert throttle.last_error == "connection: the upstream could not be reached"


def test_probe_of_a_closed_circuit_that_fails_does_not_open_it(make_workflow):
    workflow = make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1")

    assert probe_upstream(workflow.name) == "closed"


def test_probe_names_a_missing_workflow(db):
    with pytest.raises(CommandError, match="workflow 'nope' does not exist"):
        probe_upstream("nope")


def test_probe_never_calls_a_link_local_address(make_workflow):
    workflow = make_workflow(base_url="http://169.254.169.254/v1")
    open_circuit(workflow)

    printed = probe_upstream(workflow.name)

    assert printed == "open"
    assert WorkflowThrottle.objects.get().last_error.startswith("app_error:")
