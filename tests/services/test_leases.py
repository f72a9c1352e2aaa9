"""Leases: renewal, interruption, the interruption cap, and the upstream ids a recovery looks up."""

from datetime import timedelta

from django.utils import timezone

from batches.choices import BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.models import Execution
from batches.services import claims, leases
from tests.services.support import expire


def test_taking_over_an_expired_lease_resumes_the_known_upstream_run(running_batch):
    (old, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)
    old.run_id, old.task_id = "run-abc", "task-abc"
    leases.store_run_ids([old])
    Execution.objects.filter(pk=old.execution_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    new = next(
        c for c in claims.claim(running_batch.pk, owner="runner-b", limit=10) if c.execution_id == old.execution_id
    )

    assert (new.resume_run_id, new.trigger, new.number) == ("run-abc", Trigger.RECOVERY, 2)


def test_a_row_interrupted_too_often_fails_as_interrupted(running_batch, settings):
    settings.BATCHES_MAX_INTERRUPTIONS = 1
    (old, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)
    Execution.objects.filter(pk=old.execution_id).update(
        interruptions=1, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    claimed = claims.claim(running_batch.pk, owner="runner-b", limit=10)

    assert old.execution_id not in [c.execution_id for c in claimed]
    row = Execution.objects.get(pk=old.execution_id)
    assert (row.status, row.error_type) == (ExecutionStatus.FAILED, ErrorType.INTERRUPTED)


def test_renewing_extends_only_the_owners_leases(running_batch):
    claims.claim(running_batch.pk, owner="runner-a", limit=1)
    Execution.objects.update(lease_expires_at=timezone.now())

    renewed = leases.renew_leases("runner-a", now=timezone.now() + timedelta(minutes=5))

    assert renewed == 1
    assert Execution.objects.running().get().lease_expires_at > timezone.now() + timedelta(minutes=5)


def test_a_second_recovery_still_knows_the_upstream_run_of_the_first(running_batch):
    (first, _) = claims.claim(running_batch.pk, owner="runner-a", limit=10)
    first.run_id, first.task_id = "run-abc", "task-abc"
    leases.store_run_ids([first])
    expire(first.execution_id)
    claims.claim(running_batch.pk, owner="runner-b", limit=10)  # interrupted again before its own run was announced
    expire(first.execution_id)

    claimed = claims.claim(running_batch.pk, owner="runner-c", limit=10)
    third = next(c for c in claimed if c.execution_id == first.execution_id)

    assert (third.resume_run_id, third.number) == ("run-abc", 3)
    assert Execution.objects.get(pk=first.execution_id).task_id == "task-abc"


def test_a_fresh_claim_keeps_the_latest_run_id_until_its_call_announces_one(running_batch):
    """If this try dies before its own run starts, the next one still asks Dify about the earlier run."""
    Execution.objects.filter(index=0).update(workflow_run_id="old-run", task_id="old-task", next_trigger=Trigger.MANUAL)

    claims.claim(running_batch.pk, owner="runner-a", limit=1)

    assert Execution.objects.filter(index=0).values_list("workflow_run_id", "task_id").get() == ("old-run", "")


def test_rows_failed_by_the_interruption_cap_finish_their_batch_at_once(make_batch, settings):
    settings.BATCHES_MAX_INTERRUPTIONS = 1
    batch = make_batch(rows=2, status=BatchStatus.RUNNING, concurrency=2)
    claims.claim(batch.pk, owner="runner-a", limit=2)
    Execution.objects.filter(index=0).update(status=ExecutionStatus.SUCCEEDED, lease_token="")
    Execution.objects.filter(index=1).update(interruptions=1)
    expire()

    assert claims.claim(batch.pk, owner="runner-b", limit=2) == []

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED
