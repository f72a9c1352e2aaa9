"""A real batch through a real `qcluster` subprocess against the fake Dify over real HTTP."""

import pytest

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.models import Attempt, BatchTask, Execution
from batches.selectors.batches import batch_progress
from batches.services import imports, workflows
from fakedify.harness import running_fake_dify
from tests.processes import running_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
ROWS, CONCURRENCY = 200, 20


def write_rows(path):
    lines = ["text,lang"] + [f"row {i},en" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_batch_with_transient_faults_finishes_with_every_row_right(tmp_path):
    source = tmp_path / "rows.csv"
    write_rows(source)
    faults = "server_error=0.03,rate_limit=0.03,reset=0.02,cut=0.02"
    with running_fake_dify("--latency-ms", "150", "--faults", faults, "--seed", "7") as fake:
        workflow, _ = workflows.save_workflow("e2e", base_url=fake.url, api_key="app-e2e")
        options = imports.ImportOptions(concurrency=CONCURRENCY, max_retries=6)
        batch = imports.import_batch(workflow, source, options=options)
        with running_cluster(tmp_path / "qcluster.log"):
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED, timeout=120)
        stats = fake.stats()

    progress = batch_progress(batch)
    assert (progress.total, progress.succeeded) == (ROWS, ROWS)
    for row in Execution.objects.filter(batch=batch):
        assert row.outputs["echo"] == row.inputs
        assert row.attempt_count == Attempt.objects.filter(execution=row).count()
    assert stats["max_in_flight"] <= CONCURRENCY
    assert sum(stats["faults"].values()) > 0
    assert Attempt.objects.filter(execution__batch=batch, outcome="failed").count() == sum(stats["faults"].values())


def test_non_retryable_rows_fail_once_and_retry_after_is_honoured(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text(
        '{"text": "fine", "_fault": "", "_fault_times": 0}\n'
        '{"text": "bad", "_fault": "invalid_param", "_fault_times": 99}\n'
        '{"text": "slow down", "_fault": "rate_limit", "_fault_times": 1}\n',
        encoding="utf-8",
    )
    with running_fake_dify("--latency-ms", "20") as fake:
        workflow, _ = workflows.save_workflow("e2e", base_url=fake.url, api_key="app-e2e")
        batch = imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=3))
        with running_cluster(tmp_path / "qcluster.log"):
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED, timeout=60)

    rows = {row.inputs["text"]: row for row in Execution.objects.filter(batch=batch)}
    assert rows["fine"].status == ExecutionStatus.SUCCEEDED
    assert (rows["bad"].status, rows["bad"].error_type, rows["bad"].attempt_count) == ("failed", "invalid_input", 1)
    first, second = Attempt.objects.filter(execution=rows["slow down"]).order_by("number")
    assert first.error_type == ErrorType.RATE_LIMITED
    assert (second.started_at - first.finished_at).total_seconds() >= 0.9
    assert rows["slow down"].status == ExecutionStatus.SUCCEEDED


def test_an_auth_failure_pauses_the_batch(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "a", "_fault": "auth"}\n{"text": "b", "_fault": "auth"}\n', encoding="utf-8")
    with running_fake_dify("--latency-ms", "20") as fake:
        workflow, _ = workflows.save_workflow("e2e", base_url=fake.url, api_key="app-e2e")
        batch = imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=1))
        with running_cluster(tmp_path / "qcluster.log"):
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.PAUSED, timeout=60)

    failed = Execution.objects.filter(batch=batch, status=ExecutionStatus.FAILED)
    assert [row.error_type for row in failed] == [ErrorType.AUTH]
    assert "auth" in BatchTask.objects.get(pk=batch.pk).status_reason
