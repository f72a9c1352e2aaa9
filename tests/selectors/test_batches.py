"""A batch's progress (selectors.batches.batch_progress): the rate of a running or ended batch and its countdown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ExecutionStatus
from batches.models import BatchTask, Execution, WorkflowThrottle
from batches.selectors.batches import batch_progress

E = ExecutionStatus


def ended(make_batch: Any, status: str, minutes: int, ran: int, cancelled: int) -> BatchTask:
    """A batch that ran `minutes`, in which `ran` rows ended; `cancelled` more were cancelled at its end."""
    end = timezone.now()
    start = end - timedelta(minutes=minutes)
    batch = make_batch(rows=ran + cancelled, status=status, started_at=start, finished_at=end)
    Execution.objects.filter(batch=batch, index__lt=ran).update(status=E.SUCCEEDED, finished_at=end - timedelta(1 / 24))
    Execution.objects.filter(batch=batch, index__gte=ran).update(status=E.CANCELLED, finished_at=end)
    return batch


def test_a_finished_batch_shows_its_average_rate(make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.FINISHED, minutes=10, ran=0, cancelled=0)
    Execution.objects.bulk_create(
        Execution(batch=batch, index=i, status=E.SUCCEEDED, finished_at=batch.finished_at) for i in range(30)
    )

    assert batch_progress(batch, now=batch.finished_at + timedelta(hours=1)).rate_per_minute == 3


def test_a_cancelled_batch_counts_only_rows_that_ran(login: Any, make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.CANCELLED, minutes=30, ran=0, cancelled=100)
    Execution.objects.filter(batch=batch, index__lt=60).update(
        status=E.SUCCEEDED, finished_at=batch.started_at + timedelta(minutes=5)
    )

    progress = batch_progress(batch, now=batch.finished_at)
    html = login().get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert progress.rate_per_minute == 2  # 60 rows in 30 minutes; the 40 cancelled at the end are not a rate
    assert "60 / 100 executions ran before the batch was cancelled; 40 cancelled" in html
    assert "executions done" not in html and "stack-cancelled" in html and 'aria-valuenow="60"' in html


def test_an_ended_batch_rate_counts_only_its_running_time(make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.FINISHED, minutes=60, ran=2000, cancelled=0)
    batch.run_time = timedelta(seconds=20)

    assert batch_progress(batch, now=batch.finished_at).rate_per_minute == 6000  # not 33: an idle hour is no work


def test_in_its_first_minute_a_batch_is_measured_over_its_own_running_time(make_batch: Any) -> None:
    now = timezone.now()
    batch = make_batch(rows=20, status=BatchStatus.RUNNING, running_since=now - timedelta(seconds=20))
    Execution.objects.filter(batch=batch, index__lt=10).update(status=E.SUCCEEDED, finished_at=now)

    progress = batch_progress(batch, now=now)

    assert (progress.rate_per_minute, progress.eta_seconds) == (30, 20.0)  # 10 rows in 20 s: 10 left take 20 s


@pytest.mark.parametrize("waiting", ["paused", "circuit open"])
def test_no_countdown_while_paused_or_waiting_for_dify(make_batch: Any, waiting: str) -> None:
    now = timezone.now()
    status = BatchStatus.PAUSED if waiting == "paused" else BatchStatus.RUNNING
    batch = make_batch(rows=20, status=status, running_since=now - timedelta(minutes=5))
    Execution.objects.filter(batch=batch, index__lt=10).update(status=E.SUCCEEDED, finished_at=now)
    if waiting == "circuit open":
        WorkflowThrottle.objects.create(workflow=batch.workflow, circuit=CircuitState.OPEN, circuit_since=now)
        batch = BatchTask.objects.select_related("workflow__throttle").get(pk=batch.pk)

    assert batch_progress(batch, now=now).eta_seconds is None
