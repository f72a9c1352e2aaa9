"""An upstream outage with real processes: a cluster, the fake Dify answering 502, then gone, then back.

The windows are shorter than the issue's (45 s and 30 s) to keep CI short; bench/chaos.py runs the long ones.
"""

import time

import pytest

from batches.models import Attempt, BatchStatus, BatchTask, Execution, ExecutionStatus, WorkflowThrottle
from batches.services import lifecycle
from fakedify.harness import running_fake_dify
from tests.processes import running_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
QUICK_PROBES = {"BATCHES_CIRCUIT_PROBE_MIN": "2", "BATCHES_CIRCUIT_PROBE_MAX": "4"}


def import_rows(fake_url, tmp_path, name, rows, concurrency):
    source = tmp_path / f"{name}.csv"
    source.write_text("text\n" + "".join(f"{name} {i}\n" for i in range(rows)), encoding="utf-8")
    workflow, _ = lifecycle.save_workflow(name, base_url=fake_url, api_key="app-outage", response_mode="blocking")
    return lifecycle.import_batch(workflow, source, options=lifecycle.ImportOptions(concurrency=concurrency))


def succeeded(batch):
    return Execution.objects.filter(batch=batch, status=ExecutionStatus.SUCCEEDED).count()


def finished(batch):
    return BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def circuit(batch):
    return WorkflowThrottle.objects.filter(workflow_id=batch.workflow_id).values_list("circuit", flat=True).first()


def assert_every_row_succeeded(batch, rows):
    executions = list(Execution.objects.filter(batch=batch))
    assert len(executions) == rows
    assert all(row.status == ExecutionStatus.SUCCEEDED and row.outputs["echo"] == row.inputs for row in executions)


def test_a_502_outage_then_refused_connections_cost_no_row(tmp_path):
    with running_fake_dify("--latency-ms", "100") as fake:
        port = fake.port
        batch = import_rows(fake.url, tmp_path, "outage", rows=300, concurrency=20)
        with running_cluster(tmp_path / "cluster.log", **QUICK_PROBES):
            wait_until(lambda: succeeded(batch) >= 40, 60)
            calls_before = fake.stats()["calls"]
            fake.configure(faults={"bad_gateway": 1.0})
            wait_until(lambda: circuit(batch) == "open", 20)
            calls_at_open = fake.stats()["calls"]
            time.sleep(8)
            calls_in_502_window = fake.stats()["calls"] - calls_before
            calls_while_open = fake.stats()["calls"] - calls_at_open
            fake.stop()  # connections refused from now on
            time.sleep(6)
            with running_fake_dify("--latency-ms", "100", port=port):
                wait_until(lambda: finished(batch), 120)

    assert_every_row_succeeded(batch, 300)
    # Before the fifth failure is recorded the runners may refill once more (a second wave of 20); once the circuit
    # is open, only what was in flight then and one probe at a time (every 2-4 s over 8 s: at most 5).
    assert calls_while_open <= 20 + 5
    assert calls_in_502_window <= 2 * 20 + 5
    assert Attempt.objects.filter(execution__batch=batch, during_outage=True).exists()
    assert not Execution.objects.filter(batch=batch, auto_retries__gt=0).exists()  # the outage cost no retry


def test_a_healthy_workflow_runs_on_while_another_waits_for_its_upstream(tmp_path):
    with running_fake_dify("--latency-ms", "50") as healthy, running_fake_dify("--latency-ms", "50") as down:
        down.configure(faults={"bad_gateway": 1.0})
        waiting = import_rows(down.url, tmp_path, "waiting", rows=50, concurrency=10)
        running = import_rows(healthy.url, tmp_path, "running", rows=200, concurrency=10)
        with running_cluster(tmp_path / "cluster.log", **QUICK_PROBES):
            wait_until(lambda: finished(running), 90)
            assert circuit(waiting) in ("open", "half_open")
            assert Execution.objects.filter(batch=waiting, status=ExecutionStatus.FAILED).count() == 0
            down.configure(faults={})
            wait_until(lambda: finished(waiting), 60)

    assert_every_row_succeeded(running, 200)
    assert_every_row_succeeded(waiting, 50)


def test_a_hang_outage_opens_the_circuit_too(tmp_path):
    with running_fake_dify("--latency-ms", "50") as fake:
        batch = import_rows(fake.url, tmp_path, "hang", rows=60, concurrency=10)
        BatchTask.objects.filter(pk=batch.pk).update(config={**batch.config, "timeout": 1})
        fake.configure(faults={"hang": 1.0})
        with running_cluster(tmp_path / "cluster.log", **QUICK_PROBES):
            wait_until(lambda: circuit(batch) == "open", 30)
            fake.configure(faults={})
            wait_until(lambda: finished(batch), 60)

    assert_every_row_succeeded(batch, 60)
    assert Attempt.objects.filter(execution__batch=batch, error_type="timeout", during_outage=True).exists()
