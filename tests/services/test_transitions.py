"""The one helper that changes a batch's status, and finishing batches with nothing left."""

import pytest

from batches.models import BatchStatus, BatchTask, Execution, ExecutionStatus
from batches.services import transitions
from batches.services.transitions import ACTIVE, ENDED, TransitionError, require, transition


def test_finish_done_finishes_only_batches_with_nothing_left(make_batch):
    done = make_batch(rows=1, status=BatchStatus.RUNNING)
    busy = make_batch(rows=1, status=BatchStatus.RUNNING)
    Execution.objects.filter(batch=done).update(status=ExecutionStatus.SUCCEEDED)

    assert transitions.finish_done() == 1

    done.refresh_from_db()
    busy.refresh_from_db()
    assert (done.status, busy.status) == (BatchStatus.FINISHED, BatchStatus.RUNNING)
    assert done.finished_at is not None


S = BatchStatus


@pytest.mark.parametrize(
    "batches", [lambda ids: ids[0], lambda ids: ids, lambda ids: BatchTask.objects.filter(pk__in=ids)]
)
def test_transition_changes_only_batches_in_an_allowed_state(make_batch, batches):
    running, finished = make_batch(status=S.RUNNING), make_batch(status=S.FINISHED)

    changed = transition(batches([running.pk, finished.pk]), allowed=[S.RUNNING], status=S.PAUSED)

    assert changed == 1
    statuses = dict(BatchTask.objects.values_list("pk", "status"))
    assert statuses == {running.pk: S.PAUSED, finished.pk: S.FINISHED}


def test_require_raises_when_nothing_changed():
    require(1, 7, "is not pending")

    with pytest.raises(TransitionError, match="^batch 7 is not pending$"):
        require(0, 7, "is not pending")


def test_active_and_ended_states_cover_every_state_once():
    assert sorted(ACTIVE + ENDED) == sorted(BatchStatus.values)
