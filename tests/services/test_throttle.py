"""A workflow's rpm bucket and adaptive limit (batches/services/throttle.py)."""

from datetime import timedelta

from django.utils import timezone

from batches.choices import BatchStatus, ErrorType
from batches.dify.types import CallResult
from batches.models import WorkflowThrottle
from batches.services import claims, results, throttle


def running_batch(make_workflow, make_batch, rows=50, concurrency=50, **workflow_fields):
    workflow = make_workflow(**workflow_fields)
    return make_batch(rows=rows, workflow=workflow, status=BatchStatus.RUNNING, concurrency=concurrency)


def test_rpm_limit_grants_one_seconds_worth_at_most(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rpm_limit=600)
    now = timezone.now()

    first = claims.claim(batch.pk, owner="a", limit=50, now=now)
    same_moment = claims.claim(batch.pk, owner="a", limit=50, now=now)
    half_a_second_later = claims.claim(batch.pk, owner="a", limit=50, now=now + timedelta(seconds=0.5))

    assert (len(first), len(same_moment), len(half_a_second_later)) == (10, 0, 5)


def test_unused_tokens_are_given_back(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=2, rpm_limit=600)

    claims.claim(batch.pk, owner="a", limit=50)

    assert WorkflowThrottle.objects.get().tokens == 8


def test_two_batches_of_one_workflow_share_its_bucket(make_workflow, make_batch):
    workflow = make_workflow(rpm_limit=60)
    first = make_batch(rows=5, workflow=workflow, status=BatchStatus.RUNNING, concurrency=5)
    second = make_batch(rows=5, workflow=workflow, status=BatchStatus.RUNNING, concurrency=5)
    now = timezone.now()

    claimed = claims.claim(first.pk, owner="a", limit=5, now=now) + claims.claim(
        second.pk, owner="a", limit=5, now=now + timedelta(seconds=0.5)
    )

    assert len(claimed) == 1


def test_a_429_halves_what_was_in_flight_and_successes_grow_it_back(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=80, concurrency=40)
    claimed = claims.claim(batch.pk, owner="a", limit=40)
    limited = CallResult(ok=False, error_type=ErrorType.RATE_LIMITED, error="429", http_status=429)

    results.record_results([(claimed[0], limited)])
    after_429 = WorkflowThrottle.objects.get().concurrency_limit
    results.record_results([(claim, CallResult(ok=True, outputs={})) for claim in claimed[1:]])

    assert after_429 == 20
    assert len(claims.claim(batch.pk, owner="a", limit=40)) == 20
    assert WorkflowThrottle.objects.get().concurrency_limit == 20  # claims made before the limit do not feed it


def test_claims_stay_under_the_adaptive_limit(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=40, concurrency=40)
    WorkflowThrottle.objects.create(workflow=batch.workflow, concurrency_limit=7)

    claimed = claims.claim(batch.pk, owner="a", limit=40)
    results.record_results([(claim, CallResult(ok=True, outputs={})) for claim in claimed])

    assert len(claimed) == 7
    assert WorkflowThrottle.objects.get().concurrency_limit == 8


def test_rows_whose_calls_ended_free_their_place_under_the_adaptive_limit(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=40, concurrency=40)
    WorkflowThrottle.objects.create(workflow=batch.workflow, concurrency_limit=7)
    claimed = claims.claim(batch.pk, owner="a", limit=40)

    successors = claims.claim(batch.pk, owner="a", limit=40, ended=[claim.execution_id for claim in claimed[:3]])

    assert len(successors) == 3


def test_a_wave_of_429s_halves_once_then_only_stops_refilling(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=10, concurrency=10)
    now = timezone.now()

    throttle.rate_limited(batch.workflow_id, in_flight=10, still_running=9, now=now)
    throttle.rate_limited(batch.workflow_id, in_flight=8, still_running=6, now=now + timedelta(milliseconds=300))
    throttle.rate_limited(batch.workflow_id, in_flight=5, still_running=4, now=now + timedelta(milliseconds=600))

    assert WorkflowThrottle.objects.get().concurrency_limit == 4


def grow(workflow_id, successes):
    """Feed successes in rounds of one limit's worth, as runners report them."""
    while successes > 0:
        limit = WorkflowThrottle.objects.get(workflow_id=workflow_id).concurrency_limit
        if limit is None:
            return
        batch = min(successes, max(1, int(limit)))
        throttle.succeeded(workflow_id, batch)
        successes -= batch


def test_after_one_wave_of_429s_the_limit_grows_back_at_the_usual_pace_past_the_old_level(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=10, concurrency=100)
    throttle.rate_limited(batch.workflow_id, in_flight=100, still_running=99, now=timezone.now())

    grow(batch.workflow_id, 12_000)  # what a 20k-row batch at concurrency 100 has left after the wave

    assert (throttle.adaptive_room(batch.workflow_id) or 1_000) >= 100
    limit = WorkflowThrottle.objects.get().concurrency_limit
    assert limit is None or limit >= 140


def test_an_adaptive_limit_far_past_the_level_of_the_last_429s_is_forgotten(make_workflow, make_batch):
    batch = running_batch(make_workflow, make_batch, rows=10, concurrency=100)
    throttle.rate_limited(batch.workflow_id, in_flight=20, still_running=19, now=timezone.now())

    grow(batch.workflow_id, 5_000)

    assert throttle.adaptive_room(batch.workflow_id) is None
    assert len(claims.claim(batch.pk, owner="a", limit=100)) == 10
