"""The smaller page fixes of issue 17: row numbers, preview total, confirmations, cancelled rows, edited inputs,
rates of ended batches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ErrorType, ExecutionStatus
from batches.dify import pages
from batches.imports import uploads as upload_storage
from batches.models import Attempt, BatchTask, Execution, WorkflowThrottle
from batches.selectors.batches import batch_progress
from batches.services import lifecycle, transitions

E = ExecutionStatus
RETRY, ADD, CONTROL = "batches.retry_execution", "batches.add_batchtask", "batches.control_batchtask"


@pytest.fixture(autouse=True)
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(upload_storage, "uploads_dir", lambda: folder)
    monkeypatch.setattr(pages, "fetch_parameters", lambda app, timeout=5: None)


def test_rows_are_named_from_one(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    first = Execution.objects.get(batch=batch, index=0)
    Execution.objects.filter(pk=first.pk).update(status=E.FAILED, error_type=ErrorType.TIMEOUT)
    client = login(RETRY)

    detail = client.get(reverse("batches:execution_detail", args=[first.pk])).content.decode()
    failures = client.get(reverse("batches:batch_failures", args=[batch.pk])).content.decode()
    batch_page = client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert "<h1>Row 1 " in detail and "Row 0" not in detail
    link = f'<a href="{reverse("batches:execution_detail", args=[first.pk])}">1</a>'
    assert link in failures and link in batch_page and "Select row 1" in failures


def test_preview_shows_the_total_number_of_rows(login: Any, make_workflow: Any) -> None:
    client = login(ADD)
    content = "text\n" + "".join(f"row {i}\n" for i in range(57))
    client.post(
        reverse("batches:batch_upload"),
        {"workflow": make_workflow().pk, "file": SimpleUploadedFile("rows.csv", content.encode())},
    )

    html = client.get(reverse("batches:batch_preview")).content.decode()

    assert '<dd id="total-rows">57</dd>' in html


def test_retrying_every_failure_asks_first(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    Execution.objects.update(status=E.FAILED, error_type=ErrorType.TIMEOUT)
    client = login(RETRY)

    failures = client.get(reverse("batches:batch_failures", args=[batch.pk])).content.decode()
    detail = client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert 'value="all" data-confirm="Retry every failed row of this batch?' in failures
    assert 'data-confirm="Retry all 2 failed rows? They are sent to the app again."' in detail


def test_cancelled_rows_are_retried_from_the_batch_page(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=3, status=BatchStatus.CANCELLED, finished_at=timezone.now())
    Execution.objects.filter(batch=batch, index=0).update(status=E.FAILED, error_type=ErrorType.TIMEOUT)
    Execution.objects.filter(batch=batch, index__gt=0).update(status=E.CANCELLED, error_type=ErrorType.CANCELLED)
    client = login(RETRY)
    page = client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()
    assert 'name="scope" value="cancelled"' in page

    response = client.post(reverse("batches:batch_retry", args=[batch.pk]), {"scope": "cancelled"}, follow=True)

    assert [str(message) for message in response.context["messages"]] == ["Running 2 cancelled rows."]
    statuses = dict(Execution.objects.filter(batch=batch).values_list("index", "status"))
    assert statuses == {0: E.FAILED, 1: E.PENDING, 2: E.PENDING}
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING


def test_an_edit_keeps_the_inputs_earlier_attempts_were_sent(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=1, status=BatchStatus.FINISHED)
    row = Execution.objects.get(batch=batch)
    Execution.objects.filter(pk=row.pk).update(status=E.FAILED, error_type=ErrorType.INVALID_INPUT, attempt_count=1)
    Attempt.objects.create(execution=row, number=1, outcome=Attempt.Outcome.FAILED, error_type="invalid_input")
    client = login(RETRY)

    client.post(reverse("batches:execution_retry", args=[row.pk]), {"inputs": '{"text": "修好了"}'})

    assert Attempt.objects.get(execution=row).inputs == {"text": "row 0"}
    assert Execution.objects.get(pk=row.pk).inputs == {"text": "修好了"}
    html = client.get(reverse("batches:execution_detail", args=[row.pk])).content.decode()
    assert "Inputs sent (before staff edited them):" in html and "{&quot;text&quot;: &quot;row 0&quot;}" in html


def ended(make_batch: Any, status: str, minutes: int, ran: int, cancelled: int) -> BatchTask:
    """A batch that ran `minutes`, in which `ran` rows ended; `cancelled` more were cancelled at its end."""
    end = timezone.now()
    start = end - timedelta(minutes=minutes)
    batch = make_batch(rows=ran + cancelled, status=status, started_at=start, finished_at=end)
    Execution.objects.filter(batch=batch, index__lt=ran).update(status=E.SUCCEEDED, finished_at=end - timedelta(1 / 24))
    Execution.objects.filter(batch=batch, index__gte=ran).update(status=E.CANCELLED, finished_at=end)
    return batch


def test_a_finished_batch_shows_its_average_rate(make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.FINISHED, minutes=10, ran=0, cancelled=0)
    Execution.objects.bulk_create(
        Execution(batch=batch, index=i, status=E.SUCCEEDED, finished_at=batch.finished_at) for i in range(30)
    )

    assert batch_progress(batch, now=batch.finished_at + timedelta(hours=1)).rate_per_minute == 3


def test_a_cancelled_batch_counts_only_rows_that_ran(login: Any, make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.CANCELLED, minutes=30, ran=0, cancelled=100)
    Execution.objects.filter(batch=batch, index__lt=60).update(
        status=E.SUCCEEDED, finished_at=batch.started_at + timedelta(minutes=5)
    )

    progress = batch_progress(batch, now=batch.finished_at)
    html = login().get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert progress.rate_per_minute == 2  # 60 rows in 30 minutes; the 40 cancelled at the end are not a rate
    assert "60 / 100 executions ran before the batch was cancelled; 40 cancelled" in html
    assert "executions done" not in html and "stack-cancelled" in html and 'aria-valuenow="60"' in html


def test_admin_names_rows_from_one(admin_client: Any, make_batch: Any) -> None:
    batch = make_batch(rows=1)
    row = Execution.objects.get(batch=batch)

    response = admin_client.get(reverse("admin:batches_execution_changelist"))

    assert str(row) == f"#{batch.pk} row 1"
    assert "row" in response.context["cl"].list_display and "index" not in response.context["cl"].list_display


def test_a_cancelled_batch_whose_rows_are_retried_still_says_it_was_cancelled(login: Any, make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.CANCELLED, minutes=30, ran=3, cancelled=27)

    lifecycle.retry_executions(Execution.objects.filter(batch=batch), include_cancelled=True)
    Execution.objects.filter(batch=batch).update(status=E.SUCCEEDED, finished_at=timezone.now())
    transitions.finish_done([batch.pk])
    html = login().get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    batch.refresh_from_db()
    assert (batch.status, batch.reopened_from, batch.reopened_rows) == (BatchStatus.FINISHED, "cancelled", 27)
    assert "Cancelled, then 27 rows were retried." in html


def test_an_ended_batch_rate_counts_only_its_running_time(make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.FINISHED, minutes=60, ran=2000, cancelled=0)
    batch.run_time = timedelta(seconds=20)

    assert batch_progress(batch, now=batch.finished_at).rate_per_minute == 6000  # not 33: an idle hour is no work


def test_in_its_first_minute_a_batch_is_measured_over_its_own_running_time(make_batch: Any) -> None:
    now = timezone.now()
    batch = make_batch(rows=20, status=BatchStatus.RUNNING, running_since=now - timedelta(seconds=20))
    Execution.objects.filter(batch=batch, index__lt=10).update(status=E.SUCCEEDED, finished_at=now)

    progress = batch_progress(batch, now=now)

    assert (progress.rate_per_minute, progress.eta_seconds) == (30, 20.0)  # 10 rows in 20 s: 10 left take 20 s


@pytest.mark.parametrize("waiting", ["paused", "circuit open"])
def test_no_countdown_while_paused_or_waiting_for_dify(make_batch: Any, waiting: str) -> None:
    now = timezone.now()
    status = BatchStatus.PAUSED if waiting == "paused" else BatchStatus.RUNNING
    batch = make_batch(rows=20, status=status, running_since=now - timedelta(minutes=5))
    Execution.objects.filter(batch=batch, index__lt=10).update(status=E.SUCCEEDED, finished_at=now)
    if waiting == "circuit open":
        WorkflowThrottle.objects.create(workflow=batch.workflow, circuit=CircuitState.OPEN, circuit_since=now)
        batch = BatchTask.objects.select_related("workflow__throttle").get(pk=batch.pk)

    assert batch_progress(batch, now=now).eta_seconds is None


@pytest.mark.parametrize(("perms", "offered"), [((ADD, "batches.add_workflow"), "Add a workflow."), ((ADD,), "Ask a")])
def test_new_batch_without_workflows_points_to_the_sites_own_workflows_page(
    login: Any, db: None, perms, offered
) -> None:
    html = login(*perms).get(reverse("batches:batch_new")).content.decode()

    assert offered in html and "/admin/" not in html.split("There is no workflow yet.")[1].split("</p>")[0]


def test_the_workflow_form_shows_a_whole_timeout_and_the_add_forms_own_key_help(
    admin_client: Any, make_workflow
) -> None:
    workflow = make_workflow(timeout=600.0)

    edit = admin_client.get(reverse("batches:workflow_edit", args=[workflow.pk])).content.decode()
    add = admin_client.get(reverse("batches:workflow_add")).content.decode()

    assert 'value="600"' in edit and 'value="600.0"' not in edit
    assert "Leave blank to keep the stored key" in edit and "Leave blank to keep the stored key" not in add
