"""One row's page (views.executions): rows named from one, its files, its edit and retry, and the inputs earlier
attempts were sent."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from batches.choices import BatchStatus, ErrorType, Trigger
from batches.models import Attempt, BatchFile, Execution
from tests.views.helpers import ADD, RETRY, E, S, messages_of, preview_of, url, zip_upload


def test_execution_page_shows_inputs_outputs_and_attempts(admin_client, make_batch):
    batch = make_batch(rows=1, status=S.FINISHED)
    execution = batch.executions.get()
    Execution.objects.filter(pk=execution.pk).update(
        status=E.SUCCEEDED, inputs={"text": "你好", "n": 1}, outputs={"answer": "hi"}, workflow_run_id="run-9"
    )
    Attempt.objects.create(
        execution=execution, number=1, trigger=Trigger.AUTO, outcome=Attempt.Outcome.FAILED,
        error_type=ErrorType.RATE_LIMITED, http_status=429, error="slow down", latency=0.25,
    )  # fmt: skip
    Attempt.objects.create(
        execution=execution, number=2, trigger=Trigger.MANUAL, outcome=Attempt.Outcome.SUCCEEDED,
        http_status=200, workflow_run_id="run-9", latency=1.5, total_tokens=33,
    )  # fmt: skip

    response = admin_client.get(url("execution_detail", execution.pk))

    html = response.content.decode()
    assert response.context["inputs_json"] == '{\n  "text": "你好",\n  "n": 1\n}'
    assert response.context["outputs_json"] == '{\n  "answer": "hi"\n}'
    for text in ("rate_limited", "429", "slow down", "0.25 s", "Manual", "run-9", "1.50 s", "33"):
        assert text in html
    assert response.context["form"] is None  # succeeded: nothing to retry


@pytest.mark.parametrize(("status", "editable"), [(E.FAILED, True), (E.CANCELLED, True), (E.SUCCEEDED, False)])
def test_execution_page_offers_edit_and_retry_only_for_failed_or_cancelled_rows(
    controller, make_batch, status, editable
):
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=status)

    response = controller.get(url("execution_detail", execution.pk))

    assert (response.context["form"] is not None) is editable
    assert (url("execution_retry", execution.pk) in response.content.decode()) is editable


def test_execution_page_offers_no_retry_without_permission(login, make_batch):
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=E.FAILED)

    response = login().get(url("execution_detail", execution.pk))

    assert response.context["form"] is None


@pytest.mark.parametrize("status", [E.FAILED, E.CANCELLED])
def test_edit_and_retry_saves_the_inputs_and_queues_a_manual_retry(controller, make_batch, status):
    batch = make_batch(rows=2, status=S.FINISHED)
    execution = batch.executions.get(index=0)
    Execution.objects.filter(pk=execution.pk).update(status=status, error="bad input")

    response = controller.post(
        url("execution_retry", execution.pk), {"inputs": '{"text": "fixed", "lang": "zh"}'}, follow=True
    )

    execution.refresh_from_db()
    assert (execution.status, execution.inputs, execution.error) == (E.PENDING, {"text": "fixed", "lang": "zh"}, "")
    assert (execution.manual_retries, execution.next_trigger) == (1, Trigger.MANUAL)
    assert response.redirect_chain == [(url("execution_detail", execution.pk), 302)]
    assert messages_of(response) == [("success", "Execution queued for retry with the inputs shown.")]
    batch.refresh_from_db()
    assert batch.status == S.RUNNING


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        ("[1, 2]", "Inputs must be a JSON object"),
        ('"text"', "Inputs must be a JSON object"),
        ("{text: 1}", "Not valid JSON"),
        ("", "This field is required."),
        ('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply"),  # was a 500 (RecursionError)
        ('{"text": ' + "[" * 500 + "]" * 500 + "}", "JSON nested too deeply"),
    ],
)
def test_edit_and_retry_refuses_anything_but_a_json_object(controller, make_batch, inputs, error):
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=E.FAILED)

    response = controller.post(url("execution_retry", execution.pk), {"inputs": inputs})

    assert response.status_code == 400
    assert error in response.content.decode()
    execution.refresh_from_db()
    assert (execution.status, execution.inputs) == (E.FAILED, {"text": "row 0"})


def test_edit_and_retry_of_a_succeeded_row_changes_nothing(controller, make_batch):
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=E.SUCCEEDED)

    response = controller.post(url("execution_retry", execution.pk), {"inputs": '{"text": "x"}'}, follow=True)

    execution.refresh_from_db()
    assert (execution.status, execution.inputs) == (E.SUCCEEDED, {"text": "row 0"})
    assert messages_of(response) == [
        ("warning", "Only a failed or cancelled execution can be retried; nothing changed.")
    ]


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


@pytest.mark.usefixtures("file_app")
def test_a_rows_page_shows_its_files_and_the_results_show_their_names(login, make_workflow):
    client, workflow = login(ADD), make_workflow()
    preview_of(client, workflow, zip_upload("doc,text\ndocs/a.pdf,one\n", {"docs/a.pdf": b"A" * 3000}))
    client.post(reverse("batches:batch_import"), {"concurrency": 2, "max_retries": 2})
    row = Execution.objects.get()
    BatchFile.objects.update(upload_id="0f7a-upload")

    page = client.get(reverse("batches:execution_detail", args=[row.pk])).content.decode()
    results = client.get(reverse("batches:batch_results", args=[row.batch_id])).content.decode()

    assert "docs/a.pdf" in page and "2.9\xa0KB" in page and "0f7a-upload" in page
    assert '<td class="cell col-input">docs/a.pdf</td>' in results
    assert "local_file" not in results
