"""A runner slice in this process against the fake Dify over real HTTP."""

import httpx
import pytest

from batches.models import Attempt, BatchStatus, BatchTask, ErrorType, Execution, ExecutionStatus, Trigger
from batches.runner import Runner
from batches.services import engine
from tests.fakedify import running_fake_dify


@pytest.fixture(scope="module")
def fake():
    with running_fake_dify("--latency-ms", "50") as server:
        yield server


@pytest.fixture(autouse=True)
def clean_fake(fake):
    fake.restore(latency_ms=50)


@pytest.fixture
def batch_on_fake(make_workflow, make_batch, fake):
    def make(rows=10, concurrency=3, response_mode="streaming", **fields):
        workflow = make_workflow(base_url=fake.url, response_mode=response_mode)
        return make_batch(rows=rows, workflow=workflow, status=BatchStatus.RUNNING, concurrency=concurrency, **fields)

    return make


@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_runner_finishes_a_batch_within_its_concurrency(batch_on_fake, fake, response_mode):
    batch = batch_on_fake(rows=12, concurrency=3, response_mode=response_mode)

    recorded = Runner().run(seconds=30)

    assert recorded == 12
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED
    for row in Execution.objects.filter(batch=batch):
        assert (row.status, row.outputs["echo"]) == (ExecutionStatus.SUCCEEDED, row.inputs)
        assert row.workflow_run_id
    assert fake.stats()["max_in_flight"] == 3


def test_a_successor_is_claimed_before_the_result_it_replaces_is_written(batch_on_fake):
    batch = batch_on_fake(rows=2, concurrency=1)

    Runner().run(seconds=30)

    first, second = Execution.objects.filter(batch=batch).order_by("index")
    assert second.started_at < Attempt.objects.get(execution=first).finished_at


def test_runner_retries_transient_faults_until_they_pass(batch_on_fake, settings):
    settings.BATCHES_BACKOFF_BASE = 0.05
    batch = batch_on_fake(rows=3, concurrency=3)
    Execution.objects.filter(batch=batch, index=0).update(
        inputs={"text": "flaky", "_fault": "server_error", "_fault_times": 2}
    )

    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch, index=0)
    assert (row.status, row.attempt_count, row.auto_retries) == (ExecutionStatus.SUCCEEDED, 3, 2)
    outcomes = list(Attempt.objects.filter(execution=row).values_list("outcome", "error_type", "http_status"))
    assert outcomes == [("failed", "upstream_error", 500), ("failed", "upstream_error", 500), ("succeeded", "", 200)]


def test_runner_stops_claiming_when_an_app_error_pauses_the_batch(batch_on_fake):
    batch = batch_on_fake(rows=5, concurrency=1)
    Execution.objects.filter(batch=batch).update(inputs={"text": "x", "_fault": "app_unavailable"})

    Runner().run(seconds=30)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED
    assert Execution.objects.filter(batch=batch, error_type=ErrorType.APP_ERROR).count() == 1
    assert Execution.objects.filter(batch=batch, status=ExecutionStatus.PENDING).count() == 4


def test_recovery_records_a_run_that_finished_upstream_without_calling_again(batch_on_fake, fake):
    batch = batch_on_fake(rows=1)
    row = Execution.objects.get(batch=batch)
    body = {"inputs": row.inputs, "response_mode": "blocking", "user": "someone"}
    headers = {"Authorization": "Bearer app-secret-key"}
    run_id = httpx.post(f"{fake.url}/workflows/run", json=body, headers=headers).json()["workflow_run_id"]
    Execution.objects.filter(pk=row.pk).update(
        workflow_run_id=run_id, next_trigger=Trigger.RECOVERY, attempt_count=1, interruptions=1
    )
    calls_before = fake.stats()["calls"]

    Runner().run(seconds=30)

    row.refresh_from_db()
    assert (row.status, row.outputs["echo"]) == (ExecutionStatus.SUCCEEDED, row.inputs)
    assert fake.stats()["calls"] == calls_before
    assert Attempt.objects.get(execution=row).trigger == Trigger.RECOVERY


def test_runner_with_nothing_to_do_returns_at_once(db):
    assert Runner().run(seconds=30) == 0


def test_a_runner_shares_its_claims_fairly_between_batches(batch_on_fake):
    first = batch_on_fake(rows=4, concurrency=2)
    second = batch_on_fake(rows=4, concurrency=2)

    Runner(capacity=2).run(seconds=30)

    assert set(BatchTask.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {"finished"}


def test_run_ids_are_stored_while_the_call_is_in_flight(batch_on_fake):
    batch = batch_on_fake(rows=1)
    (claim,) = engine.claim(batch.pk, "runner-x", limit=1)

    claim.run_id, claim.task_id = "run-1", "task-1"
    engine.store_run_ids([claim])

    assert Execution.objects.get(pk=claim.execution_id).workflow_run_id == "run-1"


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_calls_in_flight_upstream(batch_on_fake, fake):
    import threading
    import time

    from batches.services import lifecycle

    fake.configure(latency_ms=8000)
    batch = batch_on_fake(rows=3, concurrency=3)
    runner = threading.Thread(target=lambda: Runner().run(seconds=30))
    began = time.monotonic()
    runner.start()
    wait = time.monotonic() + 10
    while Execution.objects.filter(batch=batch).exclude(task_id="").count() < 3 and time.monotonic() < wait:
        time.sleep(0.1)
    run_ids = list(Execution.objects.filter(batch=batch).values_list("workflow_run_id", flat=True))

    lifecycle.cancel_batch(batch.pk)
    runner.join(timeout=20)

    assert time.monotonic() - began < 7
    headers = {"Authorization": "Bearer app-secret-key"}
    statuses = {httpx.get(f"{fake.url}/workflows/run/{run_id}", headers=headers).json()["status"] for run_id in run_ids}
    assert statuses == {"running"}  # as Dify says of a stopped run, for ever (dify-real case 22)
    assert fake.stats()["stopped"] == 3
    assert set(Execution.objects.filter(batch=batch).values_list("status", flat=True)) == {"cancelled"}


def test_retrying_a_finished_batch_runs_edited_inputs_and_finishes_it_again(batch_on_fake, fake):
    from batches.services import lifecycle

    batch = batch_on_fake(rows=3, concurrency=3)
    Execution.objects.filter(batch=batch, index=1).update(inputs={"text": "bad", "_fault": "invalid_param"})
    Runner().run(seconds=30)
    failed = Execution.objects.get(batch=batch, index=1)
    assert (failed.status, BatchTask.objects.get(pk=batch.pk).status) == ("failed", "finished")

    lifecycle.retry_executions(Execution.objects.filter(pk=failed.pk), inputs={"text": "fixed"})
    Runner().run(seconds=30)

    failed.refresh_from_db()
    assert (failed.status, failed.outputs["echo"], failed.manual_retries) == ("succeeded", {"text": "fixed"}, 1)
    triggers = list(Attempt.objects.filter(execution=failed).order_by("number").values_list("trigger", "outcome"))
    assert triggers == [("auto", "failed"), ("manual", "succeeded")]
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


@pytest.mark.django_db(transaction=True)
def test_pause_stops_new_claims_while_calls_in_flight_finish_and_concurrency_changes_follow(batch_on_fake, fake):
    import threading
    import time

    from batches.services import lifecycle

    fake.configure(latency_ms=1500)
    batch = batch_on_fake(rows=40, concurrency=2)
    runner = threading.Thread(target=lambda: Runner().run(seconds=60))
    runner.start()
    time.sleep(1)
    lifecycle.set_concurrency(batch.pk, 6)
    time.sleep(2.5)
    most_after_raise = fake.stats()["max_in_flight"]
    lifecycle.pause_batch(batch.pk)
    time.sleep(2)  # the calls in flight end and are recorded; nothing new starts
    settled = Execution.objects.filter(batch=batch).exclude(status="pending").count()
    time.sleep(2)
    runner.join(timeout=30)

    assert most_after_raise == 6
    assert Execution.objects.filter(batch=batch, status="running").count() == 0
    assert Execution.objects.filter(batch=batch).exclude(status="pending").count() == settled
    assert fake.stats()["in_flight"] == 0
