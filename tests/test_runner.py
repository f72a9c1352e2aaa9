"""A runner slice in this process against the fake Dify over real HTTP."""

import io
import json
from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from batches.choices import BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.models import Attempt, BatchTask, Execution, WorkflowThrottle
from batches.runner.worker import Runner
from batches.services import claims, leases, results
from fakedify.harness import running_fake_dify


def call_command_output(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


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


def test_a_batch_whose_rows_all_fail_alike_pauses_after_the_first_few_calls(batch_on_fake, fake, settings):
    settings.BATCHES_FAIL_FAST_ROWS = 5
    batch = batch_on_fake(rows=20, concurrency=2)
    Execution.objects.filter(batch=batch).update(inputs={"text": "x", "_fault": "invalid_param"})

    Runner().run(seconds=5)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED
    assert batch.status_reason.startswith("Paused: the first 5 finished rows all failed with invalid_input")
    assert fake.stats()["calls"] <= 5 + 2  # the first five, and at most the calls in flight meanwhile
    assert json.loads(call_command_output("batch_status", str(batch.pk), "--json"))["status"] == "paused"


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
    (claim,) = claims.claim(batch.pk, owner="runner-x", limit=1)

    claim.run_id, claim.task_id = "run-1", "task-1"
    leases.store_run_ids([claim])

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
    lifecycle.set_concurrency(batch.pk, concurrency=6)
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


@pytest.mark.django_db(transaction=True)  # an outage closes the connection
def test_calls_started_before_a_later_batch_failed_to_claim_are_still_counted(batch_on_fake, monkeypatch):
    from django.db import OperationalError

    from batches.runner.call_loop import CallLoop

    first = batch_on_fake(rows=2, concurrency=2)
    second = batch_on_fake(rows=2, concurrency=2)
    real_claim = claims.claim

    def claim(batch_id, *args, **kwargs):
        if batch_id == second.pk:
            raise OperationalError("server closed the connection unexpectedly")
        return real_claim(batch_id, *args, **kwargs)

    monkeypatch.setattr(claims, "claim", claim)
    runner, calls = Runner(), CallLoop()
    try:
        runner.db_step(runner.claim_and_start, calls)

        assert runner.in_flight == len(calls.calls) == 2
        assert Execution.objects.filter(batch=first, status="running").count() == 2
    finally:
        calls.close()


def test_a_graceful_stop_writes_the_results_it_has_and_stores_every_run_id_it_knows(batch_on_fake):
    import time

    from batches.runner.call_loop import CallLoop

    batch = batch_on_fake(rows=2, concurrency=2)
    Execution.objects.filter(batch=batch, index=0).update(inputs={"text": "quick", "_latency_ms": 0})
    Execution.objects.filter(batch=batch, index=1).update(inputs={"text": "slow", "_latency_ms": 20000})
    runner, calls = Runner(), CallLoop()
    try:
        runner.claim_and_start(calls)
        deadline = time.monotonic() + 10
        while runner.events.qsize() < 3 and time.monotonic() < deadline:  # quick: started, done; slow: started
            time.sleep(0.05)
        runner.pacer.every("run ids", 0.2)  # run ids were flushed a moment ago
        runner.stopping = True

        runner.hand_back(calls)
    finally:
        calls.close()

    quick, slow = Execution.objects.filter(batch=batch).order_by("index")
    assert (quick.status, quick.outputs["echo"]) == (ExecutionStatus.SUCCEEDED, quick.inputs)
    assert (slow.status, slow.next_trigger) == (ExecutionStatus.PENDING, Trigger.RECOVERY)
    assert slow.workflow_run_id


def test_a_result_the_database_refuses_is_recorded_as_a_failed_try_not_retried_forever(
    batch_on_fake, monkeypatch, caplog
):
    from django.db import IntegrityError

    from batches.dify.types import CallResult

    batch = batch_on_fake(rows=1)
    runner = Runner()
    (claim,) = claims.claim(batch.pk, owner=runner.owner, limit=1)
    real_record = results.record_results

    def refuse_successes(outcomes, *, now=None):
        if any(result.ok for _, result in outcomes):
            raise IntegrityError("new row violates check constraint")
        return real_record(outcomes, now=now)

    monkeypatch.setattr(results, "record_results", refuse_successes)
    runner.backlog.add(claim, CallResult(ok=True, outputs={"answer": "x"}))

    runner.write_backlog()

    row = Execution.objects.get(pk=claim.execution_id)
    assert (row.status, row.error_type, row.auto_retries) == (ExecutionStatus.PENDING, ErrorType.BAD_RESPONSE, 1)
    assert "could not be recorded" in Attempt.objects.get(execution=row).error
    assert not runner.backlog
    assert any(record.exc_info for record in caplog.records)


@pytest.mark.django_db(transaction=True)  # an outage closes the connection
def test_a_lost_database_connection_keeps_the_results_for_later(batch_on_fake, monkeypatch):
    from django.db import OperationalError

    from batches.dify.types import CallResult

    batch = batch_on_fake(rows=1)
    runner = Runner()
    (claim,) = claims.claim(batch.pk, owner=runner.owner, limit=1)

    def away(outcomes, *, now=None):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(results, "record_results", away)
    runner.backlog.add(claim, CallResult(ok=True, outputs={"answer": "x"}))

    runner.write_backlog()

    assert len(runner.backlog) == 1
    assert runner.renew_first
    assert Execution.objects.get(pk=claim.execution_id).status == ExecutionStatus.RUNNING


@pytest.mark.django_db(transaction=True)  # an outage closes the connection
def test_after_a_database_outage_longer_than_a_lease_the_runner_renews_before_it_claims(
    batch_on_fake, fake, monkeypatch
):
    from datetime import timedelta

    from django.db import OperationalError
    from django.utils import timezone

    fake.configure(latency_ms=1500)
    batch = batch_on_fake(rows=3, concurrency=2)
    steps, outage = [], []
    real_claim, real_renew = claims.claim, leases.renew_leases

    def claim(*args, **kwargs):
        if not outage and Execution.objects.running().exists():
            outage.append(True)  # the database goes away for longer than a lease
            Execution.objects.running().update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            steps.append("outage")
            raise OperationalError("server closed the connection unexpectedly")
        steps.append("claim")
        return real_claim(*args, **kwargs)

    def renew(*args, **kwargs):
        steps.append("renew")
        return real_renew(*args, **kwargs)

    monkeypatch.setattr(claims, "claim", claim)
    monkeypatch.setattr(leases, "renew_leases", renew)

    Runner().run(seconds=30)

    assert steps[steps.index("outage") + 1] == "renew", steps
    assert fake.stats()["calls"] == 3
    assert not Attempt.objects.filter(execution__batch=batch, outcome="interrupted").exists()
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_a_stop_marker_left_by_an_earlier_cluster_whose_sentinel_had_this_pid_stops_nothing(batch_on_fake):
    import os
    import tempfile
    from pathlib import Path

    batch = batch_on_fake(rows=2)
    leftover = Path(tempfile.gettempdir()) / f"batches-cluster-stopping-{os.getppid()}"
    leftover.touch()
    try:
        recorded = Runner().run(seconds=30)
    finally:
        leftover.unlink(missing_ok=True)

    assert recorded == 2
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_stop_markers_of_clusters_that_are_gone_are_cleared_at_start():
    import os
    import subprocess

    from batches.cluster.hooks import MARKER_PREFIX, clear_stale_stop_markers, stop_marker

    sentinel = subprocess.Popen(["sleep", "30"])
    stale = stop_marker(sentinel.pid)
    stale.touch()
    sentinel.kill()
    sentinel.wait()
    live = stop_marker(os.getpid())
    live.touch()
    reused = live.with_name(f"{MARKER_PREFIX}{os.getpid()}-0123456789ab-1")
    reused.touch()
    try:
        clear_stale_stop_markers()

        assert (stale.exists(), live.exists(), reused.exists()) == (False, True, False)
    finally:
        for marker in (stale, live, reused):
            marker.unlink(missing_ok=True)


def test_answers_larger_than_the_configured_limit_are_bad_responses(batch_on_fake, settings):
    settings.BATCHES_MAX_RESPONSE_BYTES = 2000
    batch = batch_on_fake(rows=2, response_mode="blocking", max_retries=0)
    Execution.objects.filter(batch=batch, index=1).update(inputs={"text": "x" * 5000})

    Runner().run(seconds=30)

    small, large = Execution.objects.filter(batch=batch).order_by("index")
    assert (small.status, large.status, large.error_type) == ("succeeded", "failed", ErrorType.BAD_RESPONSE)


@pytest.mark.parametrize(("outage", "circuit", "calls"), [(None, "closed", 4), ("bad_gateway", "open", 0)])
def test_a_runner_asks_dify_with_a_health_check_never_a_row(batch_on_fake, fake, outage, circuit, calls):
    batch = batch_on_fake(rows=4, concurrency=4)
    past = timezone.now() - timedelta(seconds=1)
    WorkflowThrottle.objects.create(workflow=batch.workflow, circuit="open", circuit_since=past, next_probe_at=past)
    fake.configure(outage=outage)

    Runner().run(seconds=1.5)

    throttle = WorkflowThrottle.objects.get(workflow=batch.workflow)
    assert (throttle.circuit, throttle.probe_owner) == (circuit, "")
    assert (fake.stats()["parameters_calls"], fake.stats()["calls"]) == (1, calls)
