"""The one helper that changes a batch's status, and finishing batches with nothing left."""

from datetime import timedelta

import pytest

from batches.choices import ACTIVE, ENDED, BatchStatus, ExecutionStatus
from batches.models import BatchTask, Execution
from batches.services import transitions
from batches.services.transitions import TransitionError, require, transition


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


class ScriptedClock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at = transitions.clock.now()
        monkeypatch.setattr(transitions.clock, "now", lambda: self.at)

    def wait(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def test_a_batch_keeps_only_its_running_time_across_pauses_and_a_cancel(make_batch, monkeypatch):
    clock = ScriptedClock(monkeypatch)
    batch = make_batch(status=S.PENDING)
    steps = [(0, S.PENDING, S.RUNNING), (10, S.RUNNING, S.PAUSED), (90, S.PAUSED, S.RUNNING), (30, S.RUNNING, S.PAUSED)]
    for seconds, current, status in steps:
        clock.wait(seconds)
        assert transition(batch.pk, allowed=[current], status=status) == 1
    clock.wait(500)
    transition(batch.pk, allowed=ACTIVE, status=S.CANCELLED)

    batch.refresh_from_db()
    assert (batch.run_time, batch.running_since) == (timedelta(seconds=40), None)


def test_finishing_adds_the_last_stretch_and_a_reopened_batch_counts_on(make_batch, monkeypatch):
    clock = ScriptedClock(monkeypatch)
    batch = make_batch(rows=1, status=S.PENDING)
    transition(batch.pk, allowed=[S.PENDING], status=S.RUNNING)
    clock.wait(20)
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.SUCCEEDED)
    transitions.finish_done([batch.pk], now=clock.at)
    clock.wait(3600)  # ended: an hour before staff retry a row
    transition(batch.pk, allowed=ENDED, status=S.RUNNING)
    clock.wait(5)
    transitions.finish_done([batch.pk], now=clock.at)

    batch.refresh_from_db()
    assert (batch.status, batch.run_time) == (S.FINISHED, timedelta(seconds=25))
