"""Recovery with real processes: SIGKILL and SIGSTOP of workers and clusters, SIGTERM, a restart, reconciliation
after a kill, two clusters on one batch, and a database outage."""

import os
import signal
import time

import pytest
from django.db import connection

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import Attempt, BatchTask, Execution, RunnerSlot
from batches.services import imports, workflows
from fakedify.harness import running_fake_dify
from tests.processes import ROOT, DroppingProxy, kill_group, running_cluster, stop_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def make_batch(fake, tmp_path, rows, concurrency, **workflow_fields):
    source = tmp_path / "rows.csv"
    source.write_text("text\n" + "".join(f"row {i}\n" for i in range(rows)), encoding="utf-8")
    workflow, _ = workflows.save_workflow("recovery", base_url=fake.url, api_key="app-r", **workflow_fields)
    return imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=concurrency))


def batch_status(batch):
    return BatchTask.objects.get(pk=batch.pk).status


def running_rows(batch):
    return Execution.objects.filter(batch=batch, status=ExecutionStatus.RUNNING).count()


def runner_pids():
    return {int(owner.split(":")[2]) for owner in RunnerSlot.objects.exclude(owner="").values_list("owner", flat=True)}


def assert_every_row_right(batch, rows):
    executions = list(Execution.objects.filter(batch=batch))
    assert len(executions) == rows
    for row in executions:
        assert row.status == ExecutionStatus.SUCCEEDED
        assert row.outputs["echo"] == row.inputs
        assert Attempt.objects.filter(execution=row, outcome="succeeded").count() == 1


def test_sigkill_of_the_whole_cluster_loses_nothing_and_pays_at_most_the_calls_in_flight(tmp_path):
    with running_fake_dify("--latency-ms", "1000") as fake:
        batch = make_batch(fake, tmp_path, rows=200, concurrency=20)
        with running_cluster(tmp_path / "first.log") as cluster:
            wait_until(lambda: Execution.objects.filter(batch=batch, status="succeeded").count() >= 40, 60)
            in_flight = running_rows(batch)
            kill_group(cluster)
        with running_cluster(tmp_path / "second.log"):
            wait_until(lambda: batch_status(batch) == BatchStatus.FINISHED, 120)
        stats = fake.stats()

    assert_every_row_right(batch, 200)
    assert stats["duplicate_successes"] <= in_flight
    assert Attempt.objects.filter(execution__batch=batch, outcome="interrupted").count() <= in_flight


def test_sigkill_of_the_runner_worker_alone_is_recovered_within_a_lease(tmp_path):
    with running_fake_dify("--latency-ms", "800") as fake:
        batch = make_batch(fake, tmp_path, rows=60, concurrency=10)
        with running_cluster(tmp_path / "cluster.log", BATCHES_RUNNERS="2"):
            wait_until(lambda: running_rows(batch) == 10 and runner_pids(), 60)
            for pid in runner_pids():
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: batch_status(batch) == BatchStatus.FINISHED, 90)

    assert_every_row_right(batch, 60)
    assert Attempt.objects.filter(execution__batch=batch, outcome="interrupted").exists()


def test_sigterm_hands_the_rows_back_at_once_and_a_new_cluster_reconciles_them(tmp_path):
    with running_fake_dify("--latency-ms", "10000") as fake:
        batch = make_batch(fake, tmp_path, rows=10, concurrency=10)
        with running_cluster(tmp_path / "first.log", BATCHES_RUNNER_SLICE="60") as cluster:
            wait_until(lambda: Execution.objects.filter(batch=batch).exclude(workflow_run_id="").count() == 10, 30)
            started = time.monotonic()
            stop_cluster(cluster)
            stopped_in = time.monotonic() - started
        assert running_rows(batch) == 0
        with running_cluster(tmp_path / "second.log"):
            wait_until(lambda: batch_status(batch) == BatchStatus.FINISHED, 60)
        stats = fake.stats()

    assert stopped_in < 8  # not the 10 s calls, nor the 60 s slice
    assert_every_row_right(batch, 10)
    assert stats["calls"] == 10
    assert stats["duplicate_successes"] == 0


def test_a_worker_paused_past_its_lease_cannot_overwrite_the_newer_attempt(tmp_path):
    with running_fake_dify("--latency-ms", "3000") as fake:
        batch = make_batch(fake, tmp_path, rows=1, concurrency=1, response_mode="blocking")
        with running_cluster(tmp_path / "first.log", BATCHES_RUNNERS="2") as first:
            wait_until(lambda: running_rows(batch) == 1, 30)
            paused = int(Execution.objects.get(batch=batch).lease_owner.split(":")[2])
            os.kill(paused, signal.SIGSTOP)
            try:
                with running_cluster(tmp_path / "second.log", BATCHES_RUNNERS="2"):
                    wait_until(lambda: batch_status(batch) == BatchStatus.FINISHED, 60)
            finally:
                os.kill(paused, signal.SIGCONT)
            time.sleep(4)  # the paused worker's call ends now; its result must be discarded
            kill_group(first)

    row = Execution.objects.get(batch=batch)
    outcomes = list(Attempt.objects.filter(execution=row).order_by("number").values_list("outcome", "trigger"))
    assert outcomes == [("interrupted", "auto"), ("succeeded", "recovery")]
    assert row.status == ExecutionStatus.SUCCEEDED


def test_a_cluster_restarted_after_a_sigkill_takes_its_dead_processes_rows_over_without_waiting_out_the_leases(
    tmp_path,
):
    with running_fake_dify("--latency-ms", "4000") as fake:
        batch = make_batch(fake, tmp_path, rows=4, concurrency=4)
        with running_cluster(tmp_path / "first.log", BATCHES_LEASE_SECONDS="90") as cluster:
            wait_until(lambda: Execution.objects.filter(batch=batch).exclude(workflow_run_id="").count() == 4, 30)
            kill_group(cluster)
        restarted = time.monotonic()
        with running_cluster(tmp_path / "second.log", BATCHES_LEASE_SECONDS="90"):
            wait_until(lambda: batch_status(batch) == BatchStatus.FINISHED, 60)  # well within one 90 s lease
            finished_in = time.monotonic() - restarted
        stats = fake.stats()

    assert finished_in < 60
    assert_every_row_right(batch, 4)
    assert stats["calls"] == 4  # the interrupted runs were looked up, not paid for again
    assert Attempt.objects.filter(execution__batch=batch, outcome="interrupted").count() == 4


def test_a_cluster_whose_clock_runs_a_minute_ahead_takes_over_nothing_alive(tmp_path):
    skewed = {"PYTHONPATH": str(ROOT / "tests" / "skewed_clock"), "BATCHES_TEST_CLOCK_SKEW": "60"}
    with running_fake_dify("--latency-ms", "8000") as fake:
        batch = make_batch(fake, tmp_path, rows=4, concurrency=4)
        with running_cluster(tmp_path / "right.log"):
            wait_until(lambda: running_rows(batch) == 4, 30)
            with running_cluster(tmp_path / "ahead.log", **skewed):
                time.sleep(5)  # the clusters' runners poll every 0.2 s; leases are 6 s
                taken_over = Attempt.objects.filter(execution__batch=batch, outcome="interrupted").count()
                wait_until(lambda: batch_status(batch) == BatchStatus.FINISHED, 60)
        stats = fake.stats()

    assert taken_over == 0
    assert_every_row_right(batch, 4)
    assert stats["calls"] == 4


def finished(batch):
    return BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_a_run_interrupted_after_it_started_upstream_is_recorded_without_a_second_call(tmp_path):
    with running_fake_dify("--latency-ms", "3000") as fake:
        batch = make_batch(fake, tmp_path, rows=1, concurrency=1)
        with running_cluster(tmp_path / "first.log") as cluster:
            wait_until(lambda: Execution.objects.filter(batch=batch).exclude(workflow_run_id="").exists(), 30)
            kill_group(cluster)
        with running_cluster(tmp_path / "second.log"):
            wait_until(lambda: finished(batch), 60)
        stats = fake.stats()

    row = Execution.objects.get(batch=batch)
    assert (row.status, row.outputs["echo"]) == (ExecutionStatus.SUCCEEDED, row.inputs)
    assert stats["calls"] == 1
    assert list(Attempt.objects.filter(execution=row).values_list("outcome", flat=True)) == [
        "interrupted",
        "succeeded",
    ]


def test_two_clusters_share_a_batch_within_its_concurrency(tmp_path):
    with running_fake_dify("--latency-ms", "300") as fake:
        batch = make_batch(fake, tmp_path, rows=120, concurrency=8)
        with running_cluster(tmp_path / "a.log"), running_cluster(tmp_path / "b.log"):
            wait_until(lambda: finished(batch), 120)
        stats = fake.stats()

    assert stats["max_in_flight"] <= 8
    assert stats["calls"] == 120
    assert Attempt.objects.filter(execution__batch=batch).count() == 120


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a database server outage needs PostgreSQL")
def test_workers_ride_out_a_database_outage_and_finish_the_batch(tmp_path):
    settings_dict = connection.settings_dict
    proxy = DroppingProxy(int(settings_dict.get("PORT") or 5432))
    url = f"postgres://{settings_dict['USER']}@127.0.0.1:{proxy.port}/{settings_dict['NAME']}"
    try:
        with running_fake_dify("--latency-ms", "500") as fake:
            batch = make_batch(fake, tmp_path, rows=80, concurrency=10)
            with running_cluster(tmp_path / "cluster.log", DATABASE_URL=url):
                wait_until(lambda: Execution.objects.filter(batch=batch, status="succeeded").count() >= 10, 60)
                proxy.outage(5)
                wait_until(lambda: finished(batch), 120)
    finally:
        proxy.close()

    assert Execution.objects.filter(batch=batch, status=ExecutionStatus.SUCCEEDED).count() == 80
