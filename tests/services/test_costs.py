"""An ended batch's cost and latency are read once and kept on it; a batch that ran again is read anew."""

from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import Execution
from batches.services import costs


def test_an_ended_batch_s_figures_are_read_once_and_read_anew_after_it_runs_again(
    make_batch, django_assert_num_queries
):
    batch = make_batch(rows=4, status=BatchStatus.FINISHED, finished_at=timezone.now())
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.SUCCEEDED, latency=2.0, total_tokens=5)
    first = costs.costs_of(batch)
    batch.refresh_from_db()

    with django_assert_num_queries(0):
        assert costs.costs_of(batch) == first
    Execution.objects.filter(batch=batch).update(latency=4.0)
    batch.finished_at = timezone.now()  # it ran again and ended later
    assert costs.costs_of(batch).latency_max == 4.0
