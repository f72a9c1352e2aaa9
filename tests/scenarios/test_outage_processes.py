"""An upstream outage with real processes: a cluster, the fake Dify answering 502, then gone, then back; rows
Dify cannot serve, among rows it can; a partial outage (Dify answers GET /parameters while its runs fail).

The windows are shorter than the issues' (45 s and 30 s) to keep CI short; bench/chaos.py runs the long ones.
"""

import json
import time
from collections import Counter

import pytest

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import Attempt, BatchTask, Execution, WorkflowThrottle
from batches.services import imports, workflows
from fakedify.harness import running_fake_dify
from tests.processes import running_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
QUICK_PROBES = {"BATCHES_CIRCUIT_PROBE_MIN": "2", "BATCHES_CIRCUIT_PROBE_MAX": "4"}


def import_rows(fake_url, tmp_path, name, rows, concurrency):
    source = tmp_path / f"{name}.csv"
    source.write_text("text\n" + "".join(f"{name} {i}\n" for i in range(rows)), encoding="utf-8")
    workflow, _ = workflows.save_workflow(name, base_url=fake_url, api_key="app-outage", response_mode="blocking")
    return imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=concurrency))


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
            fake.configure(faults={"bad_gateway": 1.0})  # a proxy's 502 answers GET /parameters too
            wait_until(lambda: circuit(batch) == "open", 20)
            calls_at_open = fake.stats()["calls"]
            time.sleep(8)
            calls_in_502_window = fake.stats()["calls"] - calls_before
            calls_while_open = fake.stats()["calls"] - calls_at_open
            into_the_outage = fake.stats()["faults"]["bad_gateway"]  # run calls answered 502
            health_checks = fake.stats()["parameters_calls"]
            fake.stop()  # connections refused from now on
            time.sleep(6)
            with running_fake_dify("--latency-ms", "100", port=port):
                back = time.monotonic()
                wait_until(lambda: finished(batch), 120)
                took = time.monotonic() - back

    assert_every_row_succeeded(batch, 300)
    # Before the fifth failure is recorded the runners may refill once more (a second wave of 20); once the streak
    # asks Dify, only what was in flight then: the health checks are GET /parameters, never a row.
    assert calls_while_open <= 20
    assert into_the_outage <= 2 * 20
    assert calls_in_502_window <= 2 * 20 + 5  # and the few sent between reading the count and the outage
    assert health_checks >= 2  # the streak's, and the checks while it is open
    print(f"{into_the_outage} calls into the outage, {health_checks} health checks, done {took:.1f} s after it")
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


def import_jsonl(fake_url, tmp_path, name, rows, concurrency):
    source = tmp_path / f"{name}.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    workflow, _ = workflows.save_workflow(name, base_url=fake_url, api_key="app-outage", response_mode="blocking")
    return imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=concurrency))


def test_rows_dify_cannot_serve_fail_and_the_batch_finishes(tmp_path):
    """60 rows at concurrency 10 with the default 2 retries: 10 always answer 500 (placed last, so their first tries
    fail in a row), 5 always invalid_param. The streaks ask Dify, which answers: those rows fail, nothing waits."""
    invalid = [{"text": f"bad {i}", "_fault": "invalid_param"} for i in range(5)]
    fine = [{"text": f"fine {i}", "_fault": ""} for i in range(45)]
    crashing = [{"text": f"crash {i}", "_fault": "server_error"} for i in range(10)]
    with running_fake_dify("--latency-ms", "50") as fake:
        batch = import_jsonl(fake.url, tmp_path, "unservable", invalid + fine + crashing, concurrency=10)
        started = time.monotonic()
        with running_cluster(tmp_path / "cluster.log", **QUICK_PROBES):
            wait_until(lambda: finished(batch), 60)
        took = time.monotonic() - started
        stats = fake.stats()

    rows = {row.inputs["text"]: row for row in Execution.objects.filter(batch=batch)}
    tries = Counter(Attempt.objects.filter(execution__batch=batch).values_list("execution_id", flat=True))
    failed = {text: (row.error_type, tries[row.pk]) for text, row in rows.items() if row.status == "failed"}
    assert failed == {
        **{f"bad {i}": ("invalid_input", 1) for i in range(5)},
        **{f"crash {i}": ("upstream_error", 3) for i in range(10)},
    }
    assert all(rows[f"fine {i}"].status == "succeeded" for i in range(45))
    assert stats["calls"] == 45 + 5 + 3 * 10  # each row's own tries and no more: no row was sent as a probe
    assert stats["parameters_calls"] >= 1  # the streaks asked Dify
    assert not Attempt.objects.filter(execution__batch=batch, during_outage=True).exists()
    print(f"finished in {took:.1f} s; {stats['calls']} calls, {stats['parameters_calls']} health checks")


def test_a_partial_outage_pauses_the_batch_and_costs_no_row_a_retry(tmp_path):
    """Dify answers GET /parameters at once while every run times out (it takes 5 s, the workflow allows 1 s): the
    batch pauses with the reason."""
    with running_fake_dify("--latency-ms", "5000") as fake:
        batch = import_rows(fake.url, tmp_path, "partial", rows=60, concurrency=10)
        BatchTask.objects.filter(pk=batch.pk).update(config={**batch.config, "timeout": 1})
        with running_cluster(tmp_path / "cluster.log", **QUICK_PROBES):
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.PAUSED, 30)
            time.sleep(1.5)  # the calls in flight at the pause end (1 s timeout) and are recorded
        stats = fake.stats()

    reason = BatchTask.objects.get(pk=batch.pk).status_reason
    assert reason.startswith("Dify answers, but its runs fail:")
    assert "timeout" in reason
    assert not Execution.objects.filter(batch=batch, status=ExecutionStatus.FAILED).exists()
    assert set(Execution.objects.filter(batch=batch).values_list("auto_retries", flat=True)) == {0}
    assert stats["parameters_calls"] >= 1
    print(f"paused after {stats['calls']} calls and {stats['parameters_calls']} health checks: {reason}")
