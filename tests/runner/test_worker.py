"""A runner slice (batches.runner.worker) in this process: against the fake Dify over real HTTP and a hostile
upstream, then its claim loop with scripted calls, refilling every freed place at once on every runner, and writing
results in bounded time."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from django.core.management import call_command
from django.utils import timezone

from batches import conf
from batches.choices import BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.dify.types import CallResult
from batches.models import Attempt, BatchTask, Execution, WorkflowThrottle
from batches.runner.backlog import WRITE_WHEN_QUIET, WRITE_WITHIN
from batches.runner.worker import Runner
from batches.services import claims, leases, results
from fakedify.harness import running_fake_dify
from tests.dify.upstreams import API_KEY, answer, upstream


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


# --------------------------------------------------------------------------- the claim loop, scripted
# Several runners share one batch, as the processes of a cluster do. Their calls never go on the network (a
# scripted call loop records what was started), and their clock is scripted and stands still: no poll comes to the
# rescue, so whatever a round does not claim stays unclaimed.


class ScriptedCalls:
    """Stands in for CallLoop: records the calls the runner starts; none of them runs."""

    client = None

    def __init__(self) -> None:
        self.calls: dict[int, leases.Claim] = {}

    def start(self, claim: leases.Claim, app: Any, coro: Any) -> None:
        coro.close()
        self.calls[claim.execution_id] = claim

    def forget(self, execution_id: int) -> None:
        self.calls.pop(execution_id, None)


class Cluster:
    """Runners of one cluster, each with its scripted calls, all on one clock that moves only when told."""

    def __init__(self, count: int) -> None:
        self.now = 1_000.0
        self.runners = [Runner(owner=f"runner-{n}", clock=lambda: self.now) for n in range(count)]
        self.calls = [ScriptedCalls() for _ in self.runners]
        for runner in self.runners:
            assert claims.acquire_slot(runner.owner) is not None  # so each knows how many share the batch

    def end_calls(self, counts: list[int]) -> None:
        """A burst: `counts[n]` of runner n's calls end at once (their results are queued, as the call loop does)."""
        for runner, calls, count in zip(self.runners, self.calls, counts, strict=True):
            for claim in list(calls.calls.values())[:count]:
                runner.events.put(("done", claim, CallResult(ok=True, outputs={"answer": "x"})))

    def claim_round(self) -> list[int]:
        """One round of every runner's loop, in the worst order concurrent runners can take: every runner takes
        in what ended and claims before any of them has written its results."""
        for runner, calls in zip(self.runners, self.calls, strict=True):
            runner.absorb(runner.wait_for_events(0), calls)
        claimed = [runner.claim_successors(calls) for runner, calls in zip(self.runners, self.calls, strict=True)]
        for runner in self.runners:
            runner.write_backlog()
        return claimed


@pytest.fixture
def cluster(settings: Any) -> Cluster:
    settings.BATCHES_RUNNERS = 3
    return Cluster(3)


@pytest.mark.parametrize("burst", [[4, 4, 4], [4, 2, 3], [0, 4, 1]])
def test_calls_ending_in_one_burst_across_runners_get_their_successors_in_the_next_round(
    make_batch: Any, cluster: Cluster, burst: list[int]
) -> None:
    batch = make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=12)
    assert cluster.claim_round() == [4, 4, 4]  # each runner takes its share of the concurrency

    cluster.end_calls(burst)
    claimed = cluster.claim_round()

    assert claimed == burst
    assert Execution.objects.filter(batch=batch).running().count() == 12
    assert Execution.objects.filter(batch=batch, status="succeeded").count() == sum(burst)


def test_calls_that_end_while_a_runner_claims_get_their_successors_before_any_result_is_written(
    make_batch: Any, cluster: Cluster, monkeypatch: Any
) -> None:
    batch = make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=12)
    cluster.claim_round()
    runner, calls = cluster.runners[0], cluster.calls[0]
    first, *rest = list(calls.calls.values())
    runner.events.put(("done", first, CallResult(ok=True, outputs={})))
    runner.absorb(runner.wait_for_events(0), calls)
    real_claim = claims.claim

    def claim_while_another_call_ends(*args: Any, **kwargs: Any) -> list[leases.Claim]:
        if rest:  # the wave goes on ending while this claim is in the database
            runner.events.put(("done", rest.pop(), CallResult(ok=True, outputs={})))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(claims, "claim", claim_while_another_call_ends)
    claimed = runner.claim_successors(calls)

    assert claimed == 4
    assert len(runner.backlog) == 4  # none written yet: the successors went first
    in_flight = Execution.objects.filter(batch=batch).running().filter(not_before__isnull=True)
    assert in_flight.count() == 12


def test_a_runner_past_its_share_refills_every_place_its_calls_freed(make_batch: Any, settings: Any) -> None:
    settings.BATCHES_RUNNERS = 2
    make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=8)
    cluster = Cluster(2)
    first, late = cluster.runners
    first.pacer.due["runners"] = cluster.now + 60  # it claimed before the other came: the whole batch was its share
    assert cluster.claim_round() == [8, 0]
    first.runners = 2  # now its share is 4

    cluster.end_calls([8, 0])

    assert cluster.claim_round() == [8, 0]  # the other runner would not look before its next poll


def test_a_runner_below_its_share_looks_beyond_its_freed_places_only_at_its_poll(
    make_batch: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.BATCHES_RUNNERS = 2
    make_batch(rows=60, status=BatchStatus.RUNNING, concurrency=8)
    cluster = Cluster(2)
    greedy, below = cluster.runners
    greedy.pacer.due["runners"] = cluster.now + 60  # it claimed before the other came: it holds 6, the other 2
    greedy.capacity = 6
    assert cluster.claim_round() == [6, 2]
    asked: list[tuple[int, int]] = []  # (limit, ended) of each claim of the runner below its share
    real_claim = claims.claim

    def claim(*args: Any, **kwargs: Any) -> list[leases.Claim]:
        if kwargs["owner"] == below.owner:
            asked.append((kwargs["limit"], len(kwargs["ended"])))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(claims, "claim", claim)
    rounds = []
    for _ in range(2):
        cluster.end_calls([0, 1])
        rounds.append(cluster.claim_round())
    cluster.now += conf.settings.BATCHES_POLL_INTERVAL
    cluster.end_calls([0, 1])
    rounds.append(cluster.claim_round())

    assert rounds == [[0, 1]] * 3  # every freed place refilled; the batch is full beyond them
    # Beyond its own places (2 more, to its share of 4) it looks alongside its refills once a poll interval (and at
    # its poll, which claims without refills): the others refill theirs, and a look takes the exclusive lock.
    assert asked == [(1, 1), (2, 0), (1, 1), (1, 1), (2, 0), (2, 0)]


def ended_call(runner: Runner, calls: ScriptedCalls, execution_id: int) -> None:
    claim = leases.Claim(execution_id, 1, 1, execution_id, {}, "token", 1, "auto", 0, 2, True)
    runner.in_flight += 1
    runner.events.put(("done", claim, CallResult(ok=True, outputs={"answer": "x"})))
    runner.absorb(runner.drain(), calls)


def test_results_wait_while_calls_keep_ending_and_are_written_once_they_stop(db: None) -> None:
    now = [1_000.0]
    runner, calls = Runner(owner="runner-0", clock=lambda: now[0]), ScriptedCalls()
    runner.in_flight = 5  # calls still out
    ended_call(runner, calls, 1)

    waiting = runner.write_due(claiming=True)
    now[0] += WRITE_WHEN_QUIET + 0.001

    assert (waiting, runner.write_due(claiming=True)) == (False, True)


def test_results_are_written_within_a_bound_while_calls_never_stop_ending(db: None) -> None:
    now = [1_000.0]
    runner, calls = Runner(owner="runner-0", clock=lambda: now[0]), ScriptedCalls()
    runner.in_flight = 100
    first_end, written_at = now[0], None
    for n in range(1, 60):
        ended_call(runner, calls, n)
        if runner.write_due(claiming=True):
            written_at = now[0]
            break
        now[0] += WRITE_WHEN_QUIET / 2  # never quiet for long enough

    assert written_at is not None
    assert WRITE_WITHIN <= written_at - first_end < WRITE_WITHIN + WRITE_WHEN_QUIET / 2


@pytest.mark.parametrize(("claiming", "in_flight", "stopping"), [(False, 5, False), (True, 0, False), (True, 5, True)])
def test_results_are_written_at_once_when_nothing_more_is_coming(
    db: None, claiming: bool, in_flight: int, stopping: bool
) -> None:
    runner, calls = Runner(owner="runner-0", clock=lambda: 1_000.0), ScriptedCalls()
    runner.in_flight = in_flight
    ended_call(runner, calls, 1)
    runner.stopping = stopping

    assert runner.write_due(claiming=claiming)


def test_a_runner_records_every_hostile_answer_and_finishes(make_workflow: Any, make_batch: Any) -> None:
    """Whatever the upstream says, each row ends in a state the database accepts, and the runner returns."""
    answers = [
        answer(json.dumps({"workflow_run_id": "r" * 300, "data": {"status": "succeeded", "outputs": {"x": "\u0000"}}})
               .encode()),
        answer(b'{"data": {"status": "succeeded", "outputs": {"x": 1e999}, "total_tokens": -1}}'),
        answer(b'{"data": {"status": "failed", "error": "nul \\u0000 and\\nnewline here"}}'),
        answer(b"\xff" * 100, 500, "text/html"),
        answer(b"{" * 50_000),
    ]  # fmt: skip

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await answers[int(body["inputs"]["text"].split()[-1])](request)

    with upstream(handle) as url:
        workflow = make_workflow(base_url=url, api_key=API_KEY, response_mode="blocking", timeout=5)
        batch = make_batch(rows=len(answers), workflow=workflow, status=BatchStatus.RUNNING, max_retries=0)
        Runner().run(seconds=20)

    rows = list(Execution.objects.filter(batch=batch).order_by("index"))
    assert [row.status for row in rows] == [ExecutionStatus.SUCCEEDED] + [ExecutionStatus.FAILED] * 4
    assert [row.error_type for row in rows[1:]] == ["bad_response", "workflow_failed", "upstream_error", "bad_response"]
    assert rows[0].outputs == {"x": "\u0000"} and len(rows[0].workflow_run_id) == 64
    assert all("\u0000" not in row.error and "\n" not in row.error for row in rows)
