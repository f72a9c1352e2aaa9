"""A batch that only fails pauses after its first BATCHES_FAIL_FAST_ROWS finished rows, once."""

import pytest

from batches.choices import BatchStatus, ErrorType
from batches.models import BatchTask, Execution
from batches.services import claims, lifecycle, results
from tests.services.support import failed_result, ok_result


@pytest.fixture
def batch(make_batch, settings):
    settings.BATCHES_FAIL_FAST_ROWS = 3
    return make_batch(rows=8, status=BatchStatus.RUNNING, concurrency=8, max_retries=0)


def finish(batch, *outcomes):
    claimed = claims.claim(batch.pk, owner="runner-a", limit=len(outcomes))
    results.record_results([(claim, outcome) for claim, outcome in zip(claimed, outcomes, strict=True)])
    batch.refresh_from_db()
    return batch


INVALID = failed_result(ErrorType.INVALID_INPUT)


@pytest.mark.parametrize(
    ("outcomes", "paused"),
    [
        ([INVALID] * 3, True),
        ([INVALID] * 4, True),  # the N-th and later rows in one write
        ([INVALID] * 2, False),  # not yet N finished
        ([INVALID, INVALID, failed_result(ErrorType.WORKFLOW_FAILED)], False),  # two kinds of failure
        ([ok_result(), INVALID, INVALID], False),  # one row succeeded
    ],
    ids=["three_alike", "four_alike", "too_few", "two_kinds", "one_success"],
)
def test_a_batch_pauses_when_its_first_finished_rows_all_failed_alike(batch, outcomes, paused):
    finish(batch, *outcomes)

    assert (batch.status == BatchStatus.PAUSED) is paused
    if paused:
        assert batch.status_reason.startswith("Paused: the first 3 finished rows all failed with invalid_input")


def test_fail_fast_is_off_at_zero(batch, settings):
    settings.BATCHES_FAIL_FAST_ROWS = 0

    assert finish(batch, *[INVALID] * 4).status == BatchStatus.RUNNING


def test_rows_in_flight_at_the_pause_are_still_recorded(batch):
    in_flight = claims.claim(batch.pk, owner="runner-b", limit=2)
    finish(batch, *[INVALID] * 3)

    results.record_results([(claim, ok_result()) for claim in in_flight])

    assert Execution.objects.filter(batch=batch, status="succeeded").count() == 2
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.PAUSED


def test_a_batch_resumed_after_the_pause_is_not_paused_again_for_the_same_reason(batch):
    finish(batch, *[INVALID] * 3)
    lifecycle.resume_batch(batch.pk)

    assert finish(batch, INVALID, INVALID).status == BatchStatus.RUNNING


def test_a_batch_that_started_well_is_decided_once_and_never_paused(batch):
    finish(batch, ok_result(), ok_result(), ok_result())
    finish(batch, INVALID, INVALID, INVALID)

    assert batch.status == BatchStatus.RUNNING
    assert batch.first_rows_checked
