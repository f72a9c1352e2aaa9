"""The API key never leaks: a batch run end to end (with an auth failure) leaves it in no output, log, page or table."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from batches.choices import ErrorType, ExecutionStatus
from batches.exports.batches import export_chunks
from batches.models import Attempt, BatchTask, Execution, Workflow
from batches.runner.worker import Runner
from batches.services import imports, workflows
from fakedify.harness import FakeDifyProcess, running_fake_dify

SECRET = "app-Zq7-NEVER-LEAK-THIS-9f3b1c"
FRAGMENTS = [SECRET[i : i + 10] for i in range(len(SECRET) - 9)]  # any 10 characters of it
ROWS = [
    {"text": "fine 1", "_fault": "", "_fault_times": 0},
    {"text": "flaky", "_fault": "server_error", "_fault_times": 1},
    {"text": "bad input", "_fault": "invalid_param", "_fault_times": 9},
    {"text": "fine 2", "_fault": "", "_fault_times": 0},
    {"text": "locked out", "_fault": "auth", "_fault_times": 9},
    {"text": "never reached", "_fault": "", "_fault_times": 0},
]


def assert_secret_absent(where: str, text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    leaked = [fragment for fragment in FRAGMENTS if fragment in text]
    assert not leaked, f"{where} shows the API key ({leaked[0]!r})"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--latency-ms", "20") as server:
        yield server


@pytest.fixture
def finished_run(
    db: None, fake: FakeDifyProcess, tmp_path: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> BatchTask:
    """A batch imported and run in this process: successes, a retried fault, invalid input, then an auth failure."""
    settings.BATCHES_BACKOFF_BASE = 0.05
    caplog.set_level(logging.DEBUG, logger="batches")
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    workflow, _ = workflows.save_workflow("secretive", base_url=fake.url, api_key=SECRET, response_mode="blocking")
    batch = imports.import_batch(workflow, source, options=imports.ImportOptions(concurrency=1, max_retries=2))

    Runner().run(seconds=30)

    return batch


def test_the_run_went_as_planned(finished_run: BatchTask) -> None:
    rows = {row.inputs["text"]: row for row in Execution.objects.filter(batch=finished_run)}
    assert rows["fine 1"].status == ExecutionStatus.SUCCEEDED
    assert Attempt.objects.filter(execution=rows["flaky"], error_type=ErrorType.UPSTREAM_ERROR).exists()
    assert rows["bad input"].error_type == ErrorType.INVALID_INPUT
    assert (rows["locked out"].status, rows["locked out"].error_type) == (ExecutionStatus.FAILED, ErrorType.AUTH)
    finished_run.refresh_from_db()
    assert finished_run.status == "paused" and "auth" in finished_run.status_reason


def test_no_error_text_holds_the_key(finished_run: BatchTask) -> None:
    finished_run.refresh_from_db()

    for execution in Execution.objects.filter(batch=finished_run):
        assert_secret_absent(f"execution {execution.index}", f"{execution.error} {execution.outputs}")
    for attempt in Attempt.objects.filter(execution__batch=finished_run):
        assert_secret_absent(f"attempt {attempt.pk}", attempt.error)
    assert_secret_absent("the batch's status reason", finished_run.status_reason)
    assert Attempt.objects.filter(error_type=ErrorType.AUTH).exclude(error="").exists()


def test_no_log_record_holds_the_key(finished_run: BatchTask, caplog: pytest.LogCaptureFixture) -> None:
    records = [record for record in caplog.get_records("setup") if record.name.startswith("batches")]

    assert any("paused" in record.getMessage() for record in records)  # the capture saw the run
    for record in records:
        assert_secret_absent(f"log record {record.name}", record.getMessage())
        assert_secret_absent(f"log record {record.name}", logging.Formatter().format(record))  # with any traceback


@pytest.mark.parametrize("command", [["batch_status", "--json"], ["batch_status", "{id}", "--json"],
                                     ["batch_status"], ["recover_batches", "--json"], ["recover_batches"]])  # fmt: skip
def test_no_command_output_holds_the_key(finished_run: BatchTask, command: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()

    call_command(*[part.format(id=finished_run.pk) for part in command], stdout=out, stderr=err)

    assert out.getvalue()
    assert_secret_absent(" ".join(command), out.getvalue() + err.getvalue())


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_no_export_holds_the_key(finished_run: BatchTask, fmt: str) -> None:
    content = b"".join(export_chunks(finished_run, fmt))

    if fmt == "xlsx":  # a zip: look inside its members
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            content = b"".join(archive.read(name) for name in archive.namelist())
    assert b"locked out" in content
    assert_secret_absent(f"the {fmt} export", content)


def admin_pages(batch: BatchTask) -> list[str]:
    executions = list(Execution.objects.filter(batch=batch))
    pages = [
        reverse(f"admin:batches_{model}_changelist") for model in ("workflow", "batchtask", "execution", "attempt")
    ]
    pages += [reverse("admin:batches_workflow_change", args=[batch.workflow_id])]
    pages += [reverse("admin:batches_workflow_history", args=[batch.workflow_id])]
    pages += [reverse("admin:batches_batchtask_change", args=[batch.pk])]
    pages += [reverse("admin:batches_execution_change", args=[execution.pk]) for execution in executions]
    pages += [reverse("admin:batches_attempt_change", args=[attempt.pk]) for attempt in Attempt.objects.all()]
    return pages


def test_no_admin_page_holds_the_key(finished_run: BatchTask, admin_client: Client) -> None:
    for page in admin_pages(finished_run):
        response = admin_client.get(page)

        assert response.status_code == 200, page
        assert_secret_absent(page, response.content)


def test_saving_the_workflow_in_the_admin_keeps_the_key_and_shows_it_nowhere(
    finished_run: BatchTask, admin_client: Client
) -> None:
    workflow = Workflow.objects.get(pk=finished_run.workflow_id)
    data = {
        **{name: getattr(workflow, name) for name in ("name", "mode", "base_url", "response_mode")},
        **{"api_key": "", "timeout": 30, "concurrency": 2, "retry_workflow_failed": "on"},
    }

    response = admin_client.post(reverse("admin:batches_workflow_change", args=[workflow.pk]), data, follow=True)

    assert response.status_code == 200
    assert_secret_absent("the page after saving", response.content)
    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET


def test_no_table_holds_the_key(finished_run: BatchTask) -> None:
    """A dump of the database (every column of every table) holds no usable key."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                assert_secret_absent(f"table {table}", " ".join(_text(value) for value in row))


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)
