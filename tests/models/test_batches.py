"""The counts kept per batch (models.batches.BatchCount, kept by triggers) equal a full count of the rows after every
operation of the state machine, on both databases, and under concurrent writers on PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.models import BatchCount, BatchTask, Execution
from batches.selectors.batches import counts_and_tokens
from batches.services import claims, imports, lifecycle, recovery, results
from tests.services.support import failed_result, ok_result


def full_count(batch_id):
    counts = dict.fromkeys(ExecutionStatus.values, 0)
    rows = Execution.objects.filter(batch_id=batch_id).order_by().values_list("status")
    counts.update(dict(rows.annotate(n=Count("id"))))
    tokens = Execution.objects.filter(batch_id=batch_id).aggregate(t=Sum("total_tokens"))["t"] or 0
    return counts, tokens


def assert_counts_agree(*batches):
    kept_counts, kept_tokens = counts_and_tokens([batch.pk for batch in batches])
    for batch in batches:
        assert (kept_counts[batch.pk], kept_tokens[batch.pk]) == full_count(batch.pk)


def claim(batch, limit, owner="runner-a", **options):
    return claims.claim(batch.pk, owner=owner, limit=limit, **options)


def test_counts_equal_a_full_count_after_every_operation(make_batch):
    batch = make_batch(rows=6, status=BatchStatus.RUNNING, concurrency=4)
    other = make_batch(rows=2, status=BatchStatus.RUNNING)
    assert_counts_agree(batch, other)

    first, second, third, fourth = claim(batch, 4)
    assert_counts_agree(batch, other)
    results.record_results([(first, ok_result(total_tokens=11)), (second, failed_result(ErrorType.TIMEOUT))])
    assert_counts_agree(batch, other)
    results.record_results([(third, failed_result(ErrorType.INVALID_INPUT))])
    assert_counts_agree(batch, other)
    claim(batch, 1, ended=[fourth.execution_id], take_over=False)  # a refill in the ended row's place
    assert_counts_agree(batch, other)
    Execution.objects.running().update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    recovery.sweep()
    assert_counts_agree(batch, other)
    lifecycle.retry_failed(batch.pk)
    assert_counts_agree(batch, other)
    lifecycle.cancel_batch(batch.pk)
    assert_counts_agree(batch, other)
    lifecycle.retry_failed(batch.pk, include_cancelled=True)  # reopens the cancelled batch
    assert_counts_agree(batch, other)
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING


def test_an_import_through_the_service_is_counted(make_workflow, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(250)), encoding="utf-8")

    batch = imports.import_batch(make_workflow(), path, options=imports.ImportOptions(start=False))

    assert_counts_agree(batch)
    assert counts_and_tokens([batch.pk])[0][batch.pk][ExecutionStatus.PENDING] == 250


def test_a_deleted_batch_leaves_no_counts(make_batch):
    batch = make_batch(rows=3)
    Execution.objects.filter(batch=batch, index=0).update(status=ExecutionStatus.FAILED, total_tokens=5)

    BatchTask.objects.filter(pk=batch.pk).delete()

    assert not BatchCount.objects.filter(batch_id=batch.pk).exists()


def test_a_statement_that_changes_no_state_touches_no_counts(make_batch, django_assert_num_queries):
    batch = make_batch(rows=3, status=BatchStatus.RUNNING)
    claim(batch, 2)
    before = list(BatchCount.objects.order_by("pk").values())

    Execution.objects.running().update(lease_expires_at=timezone.now() + timedelta(minutes=5))  # a lease renewal

    assert list(BatchCount.objects.order_by("pk").values()) == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_counts_stay_equal_under_concurrent_claims_results_and_a_cancel(make_batch):
    batches = [make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=60) for _ in range(2)]
    errors = []

    def runner(owner):
        try:
            for _ in range(6):
                for batch in batches:
                    got = claims.claim(batch.pk, owner=owner, limit=4)
                    results.record_results([(c, ok_result(total_tokens=3)) for c in got[:2]])
                    results.record_results([(c, failed_result(ErrorType.INVALID_INPUT)) for c in got[2:]])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(f"runner-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    lifecycle.cancel_batch(batches[1].pk)
    for thread in threads:
        thread.join(60)

    assert not errors
    assert_counts_agree(*batches)
    assert BatchCount.objects.filter(batch_id=batches[0].pk).count() > 1  # the writers added to their own shards
