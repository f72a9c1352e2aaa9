"""The batch list, a batch's page, its export and its buttons (views.batches, views.controls)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus, ErrorType
from batches.models import BatchTask, Execution
from batches.services import lifecycle, transitions
from tests.selectors.test_batches import ended
from tests.views.helpers import ADD, BOM, CONTROL, RETRY, E, S, action_url, fail_rows, messages_of, set_rows, url


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", lambda b: action_url(b, "explode"), 404),
        ("post", lambda b: action_url(b, "delete"), 404),
        ("get", lambda b: url("batch_export", b.pk, "pdf"), 404),
        ("get", lambda b: url("batch_detail", b.pk + 1), 404),
        ("get", lambda b: url("batch_failures", b.pk + 1), 404),
        ("get", lambda b: url("batch_progress_json", b.pk + 1), 404),
        ("get", lambda b: url("execution_detail", 10**9), 404),
        ("get", lambda b: url("workflow_template", 10**9), 404),
    ],
)
def test_unknown_names_and_ids_are_404(admin_client, make_batch, method, path, status):
    batch = make_batch(status=S.RUNNING)

    response = getattr(admin_client, method)(path(batch))

    assert response.status_code == status


@pytest.mark.parametrize(
    ("permission", "action", "allowed"),
    [
        (CONTROL, "pause", True),
        (CONTROL, "retry-failed", False),
        (RETRY, "pause", False),
        (RETRY, "retry-failed", True),
    ],
)
def test_each_action_needs_its_own_permission(login, make_batch, permission, action, allowed):
    client = login(permission)
    batch = make_batch(status=S.RUNNING)

    response = client.post(action_url(batch, action))

    assert (response.status_code == 302) is allowed
    assert (response.status_code == 403) is not allowed


ACTIONS = [
    # (action, batch state before, batch state after, message level, message)
    ("start", S.PENDING, S.RUNNING, "success", "Batch started."),
    ("start", S.RUNNING, S.RUNNING, "warning", "Only a pending batch can be started."),
    ("pause", S.RUNNING, S.PAUSED, "success", "Batch paused."),
    ("pause", S.PENDING, S.PENDING, "warning", "Only a running batch can be paused."),
    ("resume", S.PAUSED, S.RUNNING, "success", "Batch resumed."),
    ("resume", S.RUNNING, S.RUNNING, "warning", "Only a paused batch can be resumed."),
    ("cancel", S.RUNNING, S.CANCELLED, "success", "Batch cancelled; 3 executions cancelled."),
    ("cancel", S.FINISHED, S.FINISHED, "warning", "A finished or cancelled batch cannot be cancelled."),
]


@pytest.mark.parametrize(("action", "before", "after", "level", "text"), ACTIONS)
def test_actions_change_state_through_the_service_and_report(
    controller, make_batch, action, before, after, level, text
):
    batch = make_batch(rows=3, status=before)

    response = controller.post(action_url(batch, action), follow=True)

    batch.refresh_from_db()
    assert batch.status == after
    assert response.redirect_chain == [(url("batch_detail", batch.pk), 302)]
    assert messages_of(response) == [(level, text)]


def test_actions_return_to_a_safe_next_page_only(controller, make_batch):
    batch = make_batch(status=S.RUNNING)

    back = controller.post(action_url(batch, "pause"), {"next": "/?status=running"})
    away = controller.post(action_url(batch, "resume"), {"next": "https://evil.example/"})

    assert back["Location"] == "/?status=running"
    assert away["Location"] == url("batch_detail", batch.pk)


def test_retry_failed_sends_failed_rows_back_to_pending_and_reopens_the_batch(controller, failed_batch):
    response = controller.post(action_url(failed_batch, "retry-failed"), follow=True)

    failed_batch.refresh_from_db()
    assert failed_batch.status == S.RUNNING
    assert Execution.objects.pending().count() == 4
    assert messages_of(response) == [("success", "Retrying 2 failed executions.")]


def test_retry_failed_without_failed_rows_warns(controller, make_batch):
    batch = make_batch(status=S.FINISHED)

    response = controller.post(action_url(batch, "retry-failed"), follow=True)

    assert messages_of(response) == [("warning", "No failed executions to retry.")]


@pytest.mark.parametrize(
    ("status", "buttons", "hidden"),
    [
        (S.PENDING, ["start", "cancel", "retry-failed"], ["pause", "resume"]),
        (S.RUNNING, ["pause", "cancel", "retry-failed"], ["start", "resume"]),
        (S.PAUSED, ["resume", "cancel", "retry-failed"], ["start", "pause"]),
        (S.FINISHED, ["retry-failed"], ["start", "pause", "resume", "cancel"]),
        (S.CANCELLED, ["retry-failed"], ["start", "pause", "resume", "cancel"]),
    ],
)
def test_detail_offers_the_buttons_that_apply(controller, make_batch, status, buttons, hidden):
    batch = make_batch(status=status)
    fail_rows(batch, 1)

    html = controller.get(url("batch_detail", batch.pk)).content.decode()

    assert 'name="csrfmiddlewaretoken"' in html
    for action in buttons:
        assert f'action="{action_url(batch, action)}"' in html
    for action in hidden:
        assert f'action="{action_url(batch, action)}"' not in html
    assert "Retry failed (1)" in html
    assert (url("batch_concurrency", batch.pk) in html) is (status not in (S.FINISHED, S.CANCELLED))


def test_detail_offers_retry_failed_only_when_something_failed(controller, make_batch):
    batch = make_batch(status=S.FINISHED)

    html = controller.get(url("batch_detail", batch.pk)).content.decode()

    assert action_url(batch, "retry-failed") not in html


def test_detail_offers_no_buttons_without_permission(login, make_batch):
    client = login()
    batch = make_batch(status=S.RUNNING)
    fail_rows(batch, 1)

    response = client.get(url("batch_detail", batch.pk))

    html = response.content.decode()
    assert response.context["controls"] == []
    assert response.context["concurrency_form"] is None
    assert action_url(batch, "pause") not in html
    assert url("batch_concurrency", batch.pk) not in html


@pytest.mark.parametrize(
    ("status", "value", "level", "text", "stored"),
    [
        (S.RUNNING, "25", "success", "Concurrency set to 25.", 25),
        (S.PAUSED, "1", "success", "Concurrency set to 1.", 1),
        (S.RUNNING, "0", "error", "Ensure this value is greater than or equal to 1.", 10),
        (S.RUNNING, "many", "error", "Enter a whole number.", 10),
        (S.FINISHED, "25", "warning", "The concurrency of a finished or cancelled batch cannot be changed.", 10),
    ],
)
def test_concurrency_is_changed_through_the_service(controller, make_batch, status, value, level, text, stored):
    batch = make_batch(status=status, concurrency=10)

    response = controller.post(url("batch_concurrency", batch.pk), {"concurrency": value}, follow=True)

    batch.refresh_from_db()
    assert batch.concurrency == stored
    assert messages_of(response) == [(level, text)]


def test_list_shows_batches_with_progress_counts_and_links(admin_client, make_batch):
    batch = make_batch(rows=4, name="invoices", status=S.RUNNING)
    fail_rows(batch, 1)

    response = admin_client.get(url("batch_list"))

    html = response.content.decode()
    assert "invoices" in html
    assert url("batch_detail", batch.pk) in html
    assert '<progress value="1" max="4">' in html
    assert "1 failed" in html
    assert "Retry failed (1)" in html
    assert url("batch_failures", batch.pk) in html


def test_list_shows_the_rate_of_running_batches(admin_client, make_batch):
    running = make_batch(rows=4, name="running", status=S.RUNNING)
    finished = make_batch(rows=4, name="finished", status=S.FINISHED)
    for batch in (running, finished):
        set_rows(batch, range(3), status=E.SUCCEEDED, finished_at=timezone.now())

    response = admin_client.get(url("batch_list"))

    rates = {row.batch.name: row.rate for row in response.context["rows"]}
    assert rates == {"running": 3, "finished": None}


def test_list_row_actions_follow_permissions(login, make_batch):
    batch = make_batch(status=S.RUNNING)
    fail_rows(batch, 1)

    html = login().get(url("batch_list")).content.decode()

    assert action_url(batch, "pause") not in html
    assert action_url(batch, "retry-failed") not in html
    assert url("batch_new") not in html


def test_list_row_actions_for_a_controller(controller, make_batch):
    batch = make_batch(status=S.RUNNING)
    fail_rows(batch, 2)

    html = controller.get(url("batch_list")).content.decode()

    assert action_url(batch, "pause") in html
    assert action_url(batch, "retry-failed") in html
    assert action_url(batch, "cancel") not in html  # only on the batch's own page, behind a confirmation
    assert url("batch_new") in html


def test_list_filters_by_status(admin_client, make_batch):
    make_batch(name="alpha", status=S.RUNNING)
    make_batch(name="omega", status=S.PAUSED)

    response = admin_client.get(url("batch_list"), {"status": "paused"})

    assert [row.batch.name for row in response.context["rows"]] == ["omega"]


def test_list_ignores_an_unknown_status(admin_client, make_batch):
    make_batch(status=S.RUNNING)

    response = admin_client.get(url("batch_list"), {"status": "bogus"})

    assert len(response.context["rows"]) == 1


def test_list_is_paginated_by_50(admin_client, make_batch, make_workflow):
    workflow = make_workflow()
    for _ in range(51):
        make_batch(rows=0, workflow=workflow)

    first = admin_client.get(url("batch_list"))
    second = admin_client.get(url("batch_list"), {"page": 2})

    assert len(first.context["rows"]) == 50
    assert len(second.context["rows"]) == 1
    assert "Page 1 of 2" in first.content.decode()


@pytest.mark.parametrize("batches", [1, 40])
def test_list_query_count_does_not_grow_with_batches(
    login, make_batch, make_workflow, django_assert_max_num_queries, batches
):
    client = login(CONTROL, RETRY, ADD)
    workflows = [make_workflow(), make_workflow()]
    for number in range(batches):
        batch = make_batch(rows=2, workflow=workflows[number % 2], status=S.RUNNING)
        fail_rows(batch, 1)

    with django_assert_max_num_queries(9):  # + the upstream circuits of running batches' workflows
        response = client.get(url("batch_list"))

    assert len(response.context["rows"]) == batches


def test_detail_shows_progress_errors_failures_and_export_links(admin_client, make_batch):
    batch = make_batch(rows=6, status=S.RUNNING)
    fail_rows(batch, 1, error="quota exceeded")
    set_rows(batch, [1, 2], status=E.FAILED, error_type=ErrorType.TIMEOUT, error="slow")
    set_rows(batch, [3], status=E.SUCCEEDED, total_tokens=42)

    response = admin_client.get(url("batch_detail", batch.pk))

    progress = response.context["progress"]
    assert (progress.pending, progress.succeeded, progress.failed, progress.percent) == (2, 1, 3, 66)
    assert [(bar["error_type"], bar["count"], bar["percent"]) for bar in response.context["errors"]] == [
        ("timeout", 2, 100),
        ("upstream_error", 1, 50),
    ]
    html = response.content.decode()
    assert "quota exceeded" in html
    assert "upstream_error" in html
    assert f"{url('batch_failures', batch.pk)}?error_type=timeout" in html
    for fmt in ("csv", "xlsx", "jsonl"):
        assert url("batch_export", batch.pk, fmt) in html


def test_detail_lists_only_the_last_20_failures(admin_client, make_batch):
    batch = make_batch(rows=25, status=S.FINISHED)
    fail_rows(batch, 25)

    response = admin_client.get(url("batch_detail", batch.pk))

    assert len(response.context["failures"]) == 20


@pytest.mark.parametrize(
    ("status", "live"),
    [(S.PENDING, True), (S.RUNNING, True), (S.PAUSED, True), (S.FINISHED, False), (S.CANCELLED, False)],
)
def test_detail_polls_for_progress_until_the_batch_is_over(admin_client, make_batch, status, live):
    batch = make_batch(status=status)

    response = admin_client.get(url("batch_detail", batch.pk))

    html = response.content.decode()
    assert f'data-progress-url="{url("batch_progress_json", batch.pk)}"' in html
    assert '<script id="progress-data" type="application/json">' in html
    assert response.context["progress_data"]["finished"] is not live
    # without JavaScript, the page refreshes itself instead
    assert ('<noscript><meta http-equiv="refresh"' in html) is live


@pytest.mark.parametrize(
    ("fmt", "content_type", "starts_with"),
    [
        ("csv", "text/csv; charset=utf-8", BOM),
        ("jsonl", "application/x-ndjson; charset=utf-8", b'{"id": '),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK"),
    ],
)
def test_export_streams_each_format_as_an_attachment(admin_client, make_batch, fmt, content_type, starts_with):
    batch = make_batch(rows=3, name="report")

    response = admin_client.get(url("batch_export", batch.pk, fmt))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch.pk}-report.{fmt}"'
    assert b"".join(response.streaming_content).startswith(starts_with)


def test_a_moved_batch_says_so_and_offers_to_run_on_the_new_dify(controller, make_batch):
    batch = make_batch(status=S.PAUSED)
    batch.workflow.base_url = "http://127.0.0.1:9/new/v1"
    batch.workflow.save()

    html = controller.get(url("batch_detail", batch.pk)).content.decode()
    response = controller.post(action_url(batch, "repoint"), follow=True)

    assert "its workflow now points at http://127.0.0.1:9/new/v1" in html
    assert f'action="{action_url(batch, "repoint")}"' in html
    batch.refresh_from_db()
    assert batch.config["base_url"] == "http://127.0.0.1:9/new/v1"
    assert batch.config["moved_from"] == ["http://127.0.0.1:9/v1"]
    assert messages_of(response) == [
        ("success", "This batch now runs on its workflow's current Dify; resume it to go on.")
    ]
    assert f'action="{action_url(batch, "repoint")}"' not in response.content.decode()
    assert "Earlier Dify: http://127.0.0.1:9/v1" in response.content.decode()


def test_pointing_a_batch_at_the_new_dify_needs_the_control_permission(login, make_batch):
    batch = make_batch(status=S.PAUSED)
    batch.workflow.base_url = "http://127.0.0.1:9/new/v1"
    batch.workflow.save()

    response = login(RETRY, ADD).post(action_url(batch, "repoint"))

    assert response.status_code == 403


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


def test_a_cancelled_batch_whose_rows_are_retried_still_says_it_was_cancelled(login: Any, make_batch: Any) -> None:
    batch = ended(make_batch, BatchStatus.CANCELLED, minutes=30, ran=3, cancelled=27)

    lifecycle.retry_executions(Execution.objects.filter(batch=batch), include_cancelled=True)
    Execution.objects.filter(batch=batch).update(status=E.SUCCEEDED, finished_at=timezone.now())
    transitions.finish_done([batch.pk])
    html = login().get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    batch.refresh_from_db()
    assert (batch.status, batch.reopened_from, batch.reopened_rows) == (BatchStatus.FINISHED, "cancelled", 27)
    assert "Cancelled, then 27 rows were retried." in html
