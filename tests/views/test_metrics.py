"""`/metrics`: off by default, refused without its bearer token, and its numbers are the database's."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from batches.choices import BatchStatus, CircuitState, ExecutionStatus
from batches.models import Attempt, ClusterHeartbeat, Execution, RunnerSlot, WorkflowThrottle

TOKEN = "scrape-token-1"


@pytest.fixture
def scrape(settings, client: Client):
    settings.BATCHES_METRICS_TOKEN = TOKEN

    def get():
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        return {family.name: family for family in text_string_to_metric_families(answer.content.decode())}

    return get


def samples(family, name=None):
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if name is None or sample.name == name
    }


def test_metrics_are_off_without_a_token(db, client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_metrics_refuse_a_request_without_the_token(db, client, settings, header):
    settings.BATCHES_METRICS_TOKEN = TOKEN

    answer = client.get("/metrics", headers={"Authorization": header} if header else {})

    assert answer.status_code == 403


@pytest.mark.parametrize(("allowed", "status"), [(["10.0.0.0/8"], 403), (["127.0.0.1"], 200), ([], 200)])
def test_metrics_may_be_limited_to_given_addresses(db, client, settings, allowed, status):
    settings.BATCHES_METRICS_TOKEN, settings.BATCHES_METRICS_ALLOWED_IPS = TOKEN, allowed

    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert answer.status_code == status


def test_row_counts_equal_the_database(make_batch, make_workflow, scrape):
    first = make_batch(rows=5, workflow=make_workflow(name="alpha"), status=BatchStatus.RUNNING)
    make_batch(rows=2, workflow=make_workflow(name="beta"), status=BatchStatus.PENDING)
    Execution.objects.filter(batch=first, index__lt=3).update(status=ExecutionStatus.SUCCEEDED)
    Execution.objects.filter(batch=first, index=3).update(status=ExecutionStatus.FAILED)

    family = scrape()["batches_executions"]

    assert samples(family) == {
        (("status", "succeeded"), ("workflow", "alpha")): 3,
        (("status", "failed"), ("workflow", "alpha")): 1,
        (("status", "pending"), ("workflow", "alpha")): 1,
        (("status", "pending"), ("workflow", "beta")): 2,
    }


def test_calls_and_their_latency_histogram_are_counted_from_the_attempts(make_batch, make_workflow, scrape):
    batch = make_batch(rows=3, workflow=make_workflow(name="alpha"))
    rows = list(batch.executions.all())
    tries = [("succeeded", "", 0.2), ("succeeded", "", 3.0), ("failed", "timeout", 700.0), ("failed", "auth", None)]
    Attempt.objects.bulk_create(
        Attempt(execution=rows[n % 3], number=n + 1, outcome=o, error_type=e, latency=s)
        for n, (o, e, s) in enumerate(tries)
    )

    found = scrape()
    calls, seconds = found["batches_calls"], found["batches_call_seconds"]

    assert samples(calls, "batches_calls_total") == {
        (("error_type", ""), ("outcome", "succeeded"), ("workflow", "alpha")): 2,
        (("error_type", "timeout"), ("outcome", "failed"), ("workflow", "alpha")): 1,
        (("error_type", "auth"), ("outcome", "failed"), ("workflow", "alpha")): 1,
    }
    buckets = samples(seconds, "batches_call_seconds_bucket")
    assert buckets[(("le", "0.25"), ("workflow", "alpha"))] == 1
    assert buckets[(("le", "5.0"), ("workflow", "alpha"))] == 2
    assert buckets[(("le", "600.0"), ("workflow", "alpha"))] == 2
    assert buckets[(("le", "+Inf"), ("workflow", "alpha"))] == 3
    assert samples(seconds, "batches_call_seconds_count") == {(("workflow", "alpha"),): 3}
    assert samples(seconds, "batches_call_seconds_sum") == {(("workflow", "alpha"),): pytest.approx(703.2)}


@pytest.mark.parametrize(("state", "value"), [("closed", 0), ("half_open", 1), ("open", 2)])
def test_the_circuit_state_per_workflow(make_workflow, scrape, state, value):
    WorkflowThrottle.objects.create(workflow=make_workflow(name="alpha"), circuit=CircuitState(state))

    assert samples(scrape()["batches_circuit_state"]) == {(("workflow", "alpha"),): value}


def test_runners_clusters_and_the_oldest_due_row(make_batch, scrape):
    now = timezone.now()
    batch = make_batch(rows=2, status=BatchStatus.RUNNING, started_at=now - timedelta(minutes=5))
    Execution.objects.filter(batch=batch, index=0).update(status=ExecutionStatus.RUNNING)
    RunnerSlot.objects.create(slot=0, owner="node:1", expires_at=now + timedelta(minutes=1))
    RunnerSlot.objects.create(slot=1, owner="", expires_at=None)
    ClusterHeartbeat.objects.create(name="n:1", node="n", pid=1, started_at=now, seen_at=now)
    ClusterHeartbeat.objects.create(name="n:2", node="n", pid=2, started_at=now, seen_at=now - timedelta(hours=1))

    found = scrape()

    assert found["batches_runners"].samples[0].value == 1
    assert found["batches_calls_in_flight"].samples[0].value == 1
    assert found["batches_live_clusters"].samples[0].value == 1
    assert 290 < found["batches_oldest_due_seconds"].samples[0].value < 400
