"""Staff pages: access rules, every page and POST, the new-batch flow, failures and retries, JSON, i18n, speed."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batches import dify, views
from batches.dify import InputVariable
from batches.models import Attempt, BatchStatus, BatchTask, ErrorType, Execution, ExecutionStatus, Trigger

S = BatchStatus
E = ExecutionStatus
SECRET = "app-TOP-SECRET-KEY-123"
CONTROL = "batches.control_batchtask"
RETRY = "batches.retry_execution"
ADD = "batches.add_batchtask"
BOM = b"\xef\xbb\xbf"
UPLOADS_DIR = views.uploads_dir  # before the autouse fixture below replaces it


# --------------------------------------------------------------------------- helpers and fixtures


def fail_rows(batch: BatchTask, count: int, error: str = "boom", error_type: str = ErrorType.UPSTREAM_ERROR) -> None:
    rows = Execution.objects.filter(batch=batch, index__lt=count)
    rows.update(status=E.FAILED, error_type=error_type, error=error, http_status=502, attempt_count=3)


def set_rows(batch: BatchTask, indexes: range | list[int], **fields: Any) -> None:
    Execution.objects.filter(batch=batch, index__in=list(indexes)).update(**fields)


def action_url(batch: BatchTask, action: str) -> str:
    return reverse("batches:batch_action", args=[batch.pk, action])


def url(name: str, *args: Any) -> str:
    return reverse(f"batches:{name}", args=args)


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def csv_upload(content: str | bytes, name: str = "rows.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


@pytest.fixture(autouse=True)
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Uploads waiting between preview and import go to a folder of this test's own."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(views, "uploads_dir", lambda: folder)
    return folder


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[InputVariable] | None], None]:
    """Make the app's GET /parameters answer these variables (None: unreachable)."""

    def answer(found: list[InputVariable] | None) -> None:
        monkeypatch.setattr(dify, "fetch_parameters", lambda app, timeout=5: found)

    return answer


@pytest.fixture
def controller(login: Any) -> Client:
    return login(CONTROL, RETRY, ADD)


@pytest.fixture
def failed_batch(make_batch: Any) -> BatchTask:
    batch = make_batch(rows=4, status=S.FINISHED)
    fail_rows(batch, 2)
    return batch


# --------------------------------------------------------------------------- access rules


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: Callable[[BatchTask, Execution], str]
    permission: str | None = None  # needed on top of being staff
    data: Callable[[BatchTask], dict[str, Any]] = lambda batch: {}
    json: bool = False


ENDPOINTS = {
    "batch_list": Endpoint("get", lambda b, e: url("batch_list")),
    "batch_detail": Endpoint("get", lambda b, e: url("batch_detail", b.pk)),
    "batch_failures": Endpoint("get", lambda b, e: url("batch_failures", b.pk)),
    "batch_export": Endpoint("get", lambda b, e: url("batch_export", b.pk, "csv")),
    "execution_detail": Endpoint("get", lambda b, e: url("execution_detail", e.pk)),
    "workflow_template": Endpoint("get", lambda b, e: url("workflow_template", b.workflow_id)),
    "batch_progress_json": Endpoint("get", lambda b, e: url("batch_progress_json", b.pk), json=True),
    "batch_failures_json": Endpoint("get", lambda b, e: url("batch_failures_json", b.pk), json=True),
    "batch_new": Endpoint("get", lambda b, e: url("batch_new"), ADD),
    "batch_preview": Endpoint("get", lambda b, e: url("batch_preview"), ADD),
    "batch_upload": Endpoint(
        "post",
        lambda b, e: url("batch_upload"),
        ADD,
        lambda b: {"workflow": b.workflow_id, "file": csv_upload("text\nhello\n")},
    ),
    "batch_import": Endpoint("post", lambda b, e: url("batch_import"), ADD, lambda b: {"concurrency": 2}),
    "batch_action": Endpoint("post", lambda b, e: action_url(b, "pause"), CONTROL),
    "batch_concurrency": Endpoint(
        "post", lambda b, e: url("batch_concurrency", b.pk), CONTROL, lambda b: {"concurrency": 7}
    ),
    "batch_retry": Endpoint("post", lambda b, e: url("batch_retry", b.pk), RETRY, lambda b: {"scope": "all"}),
    "batch_retry_json": Endpoint(
        "post", lambda b, e: url("batch_retry_json", b.pk), RETRY, lambda b: {"scope": "all"}, json=True
    ),
    "execution_retry": Endpoint(
        "post", lambda b, e: url("execution_retry", e.pk), RETRY, lambda b: {"inputs": '{"text": "fixed"}'}
    ),
}
PAGES = [name for name, endpoint in ENDPOINTS.items() if endpoint.method == "get"]
POSTS = [name for name, endpoint in ENDPOINTS.items() if endpoint.method == "post"]


@pytest.fixture
def target(make_batch: Any) -> tuple[BatchTask, Execution]:
    """A running batch of three rows whose first row failed."""
    batch = make_batch(rows=3, status=S.RUNNING)
    fail_rows(batch, 1)
    return batch, batch.executions.get(index=0)


def call(client: Client, name: str, target: tuple[BatchTask, Execution]) -> Any:
    endpoint = ENDPOINTS[name]
    batch, execution = target
    request = getattr(client, endpoint.method)
    path = endpoint.path(batch, execution)
    return request(path, endpoint.data(batch)) if endpoint.method == "post" else request(path)


def state(target: tuple[BatchTask, Execution]) -> tuple[Any, ...]:
    batch, execution = target
    batch.refresh_from_db()
    execution.refresh_from_db()
    return (batch.status, batch.concurrency, execution.status, execution.inputs, BatchTask.objects.count())


def assert_sent_to_login_or_json_403(name: str, response: Any) -> None:
    if ENDPOINTS[name].json:
        assert response.status_code == 403
        assert response["Content-Type"] == "application/json"
        assert "error" in response.json()
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("name", ENDPOINTS)
def test_anonymous_users_are_sent_to_the_login_page(client, target, name):
    before = state(target)

    response = call(client, name, target)

    assert_sent_to_login_or_json_403(name, response)
    assert state(target) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_users_who_are_not_staff_are_sent_to_the_login_page(login, target, name):
    client = login(CONTROL, RETRY, ADD, staff=False)
    before = state(target)

    response = call(client, name, target)

    assert_sent_to_login_or_json_403(name, response)
    assert state(target) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_staff_without_permissions_read_pages_but_change_nothing(login, target, name):
    client = login()
    before = state(target)

    response = call(client, name, target)

    if ENDPOINTS[name].permission:
        assert response.status_code == 403
    else:
        assert response.status_code in (200, 302)
        assert not response.get("Location", "").startswith("/admin/login/")
    assert state(target) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_staff_with_the_one_permission_needed_get_through(login, target, name):
    endpoint = ENDPOINTS[name]
    client = login(*([endpoint.permission] if endpoint.permission else []))

    response = call(client, name, target)

    assert response.status_code in (200, 302)
    assert not response.get("Location", "").startswith("/admin/login/")


@pytest.mark.parametrize("name", POSTS)
def test_every_post_is_csrf_protected(django_user_model, target, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root"))
    before = state(target)

    response = call(client, name, target)

    assert response.status_code == 403
    assert state(target) == before


@pytest.mark.parametrize("name", POSTS)
def test_posts_refuse_get(admin_client, target, name):
    endpoint = ENDPOINTS[name]

    response = admin_client.get(endpoint.path(*target))

    assert response.status_code == 405


@pytest.mark.parametrize("name", ["batch_list", "batch_detail", "batch_progress_json", "batch_failures_json"])
def test_pages_refuse_post(admin_client, target, name):
    response = admin_client.post(ENDPOINTS[name].path(*target))

    assert response.status_code == 405


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


def test_retry_json_without_permission_answers_json_403(login, failed_batch):
    client = login()

    response = client.post(url("batch_retry_json", failed_batch.pk), {"scope": "all"})

    assert response.status_code == 403
    assert response.json() == {"error": "You may not retry executions."}
    assert Execution.objects.failed().count() == 2


# --------------------------------------------------------------------------- batch controls


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


# --------------------------------------------------------------------------- batch list


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


# --------------------------------------------------------------------------- batch detail and progress


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


def test_progress_json_has_the_documented_shape(login, make_batch):
    client = login()
    batch = make_batch(rows=4, status=S.RUNNING, concurrency=3)
    fail_rows(batch, 1, error_type=ErrorType.RATE_LIMITED)
    set_rows(batch, [1], status=E.SUCCEEDED, total_tokens=7, finished_at=timezone.now())
    set_rows(batch, [2], status=E.RUNNING)

    data = client.get(url("batch_progress_json", batch.pk)).json()

    assert data["started_at"] is None and data["finished_at"] is None
    assert (data["eta"], data["eta_seconds"]) == ("0:02:00", 120.0)  # 2 rows left at 1 per minute
    del data["started_at"], data["finished_at"], data["eta"], data["eta_seconds"]
    assert data == {
        "upstream": {"state": "closed", "since": None, "last_error": "", "next_probe_at": None},
        "waiting_for_dify": "",
        "id": batch.pk,
        "status": "running",
        "status_display": "Running",
        "status_reason": "",
        "finished": False,
        "concurrency": 3,
        "total": 4,
        "pending": 1,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "done": 2,
        "percent": 50,
        "total_tokens": 7,
        "rate_per_minute": 1,
        "segments": {"succeeded": 25.0, "failed": 25.0, "cancelled": 0.0, "running": 25.0},
        "errors": [{"error_type": "rate_limited", "label": "Rate limited", "count": 1, "percent": 100}],
    }


def test_progress_json_says_when_a_batch_is_over(admin_client, make_batch):
    batch = make_batch(rows=2, status=S.CANCELLED)

    data = admin_client.get(url("batch_progress_json", batch.pk)).json()

    assert (data["status"], data["finished"]) == ("cancelled", True)


# --------------------------------------------------------------------------- failures and retries


def test_failures_lists_failed_rows_with_error_attempts_and_status(admin_client, make_batch):
    batch = make_batch(rows=5, status=S.FINISHED)
    fail_rows(batch, 2, error="bad gateway")
    set_rows(batch, [2], status=E.CANCELLED, error_type=ErrorType.CANCELLED)

    response = admin_client.get(url("batch_failures", batch.pk))

    rows = list(response.context["page"])
    assert [row.index for row in rows] == [0, 1]
    html = response.content.decode()
    assert "bad gateway" in html
    assert ">502<" in html
    assert url("execution_detail", rows[0].pk) in html
    assert 'name="execution"' in html


def test_failures_filter_by_error_type_and_ignore_unknown_ones(admin_client, make_batch):
    batch = make_batch(rows=5, status=S.FINISHED)
    fail_rows(batch, 2)
    set_rows(batch, [3, 4], status=E.FAILED, error_type=ErrorType.TIMEOUT)

    timeouts = admin_client.get(url("batch_failures", batch.pk), {"error_type": "timeout"})
    unknown = admin_client.get(url("batch_failures", batch.pk), {"error_type": "nonsense"})

    assert [row.index for row in timeouts.context["page"]] == [3, 4]
    assert "Retry all “Timeout” (2)" in timeouts.content.decode()
    assert [row.index for row in unknown.context["page"]] == [0, 1, 3, 4]


def test_failures_are_paginated_by_50(admin_client, make_batch):
    batch = make_batch(rows=60, status=S.FINISHED)
    fail_rows(batch, 60)

    first = admin_client.get(url("batch_failures", batch.pk))
    second = admin_client.get(url("batch_failures", batch.pk), {"page": 2})

    assert len(first.context["page"]) == 50
    assert [row.index for row in second.context["page"]] == list(range(50, 60))


def test_failures_offer_no_retry_without_permission(login, failed_batch):
    response = login().get(url("batch_failures", failed_batch.pk))

    html = response.content.decode()
    assert response.context["can_retry"] is False
    assert 'name="one"' not in html
    assert 'value="all"' not in html


def test_failures_json_has_the_documented_shape(login, make_batch):
    batch = make_batch(rows=3, status=S.FINISHED)
    fail_rows(batch, 1, error="no")
    set_rows(batch, [2], status=E.FAILED, error_type=ErrorType.TIMEOUT, error="slow", attempt_count=1)
    row = batch.executions.get(index=2)

    data = login().get(url("batch_failures_json", batch.pk), {"error_type": "timeout", "page": 1}).json()

    assert data == {
        "batch": batch.pk,
        "error_type": "timeout",
        "count": 1,
        "page": 1,
        "pages": 1,
        "results": [
            {
                "id": row.pk,
                "index": 2,
                "error_type": "timeout",
                "error": "slow",
                "attempts": 1,
                "http_status": None,
                "finished_at": None,
                "url": url("execution_detail", row.pk),
            }
        ],
    }


def test_failures_json_pages(admin_client, make_batch):
    batch = make_batch(rows=55, status=S.FINISHED)
    fail_rows(batch, 55)

    data = admin_client.get(url("batch_failures_json", batch.pk), {"page": 2}).json()

    assert (data["count"], data["page"], data["pages"]) == (55, 2, 2)
    assert [row["index"] for row in data["results"]] == [50, 51, 52, 53, 54]


def rows_by_index(batch: BatchTask) -> dict[int, Execution]:
    return {row.index: row for row in batch.executions.all()}


@pytest.fixture
def mixed_batch(make_batch: Any) -> BatchTask:
    """Rows 0-1 failed upstream_error, 2-3 failed timeout, 4 succeeded, 5 cancelled."""
    batch = make_batch(rows=6, status=S.FINISHED)
    fail_rows(batch, 2)
    set_rows(batch, [2, 3], status=E.FAILED, error_type=ErrorType.TIMEOUT)
    set_rows(batch, [4], status=E.SUCCEEDED)
    set_rows(batch, [5], status=E.CANCELLED, error_type=ErrorType.CANCELLED)
    return batch


def retry_data(batch: BatchTask, scope: str, indexes: list[int] | tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
    rows = rows_by_index(batch)
    data: dict[str, Any] = {"scope": scope, "execution": [rows[i].pk for i in indexes], **extra}
    if scope == "one":
        data = {"one": rows[indexes[0]].pk}
    return data


RETRIES = [
    # (scope, selected indexes, extra fields, pending afterwards, message level, message)
    ("one", [2], {}, [2], "success", "Retrying 1 failed execution."),
    ("selected", [0, 3], {}, [0, 3], "success", "Retrying 2 failed executions."),
    ("selected", [0, 4], {}, [0], "warning", "Retrying 1 failed execution. 1 was skipped: it is no longer failed."),
    ("error_type", [], {"error_type": "timeout"}, [2, 3], "success", "Retrying 2 failed executions."),
    ("all", [], {"error_type": "timeout"}, [0, 1, 2, 3], "success", "Retrying 4 failed executions."),
    ("one", [4], {}, [], "warning", "No failed executions to retry."),
    ("selected", [], {}, [], "error", "Select at least one execution to retry."),
    ("error_type", [], {}, [], "error", "Choose an error type to retry."),
    ("", [], {}, [], "error", "Choose which executions to retry."),
]


@pytest.mark.parametrize(("scope", "indexes", "extra", "pending", "level", "text"), RETRIES)
def test_each_retry_path_retries_what_it_says_and_reports(
    controller, mixed_batch, scope, indexes, extra, pending, level, text
):
    failures = url("batch_failures", mixed_batch.pk) + "?error_type=timeout"
    data = {**retry_data(mixed_batch, scope, indexes, **extra), "next": failures}

    response = controller.post(url("batch_retry", mixed_batch.pk), data, follow=True)

    assert response.redirect_chain == [(failures, 302)]
    assert messages_of(response) == [(level, text)]
    assert sorted(mixed_batch.executions.pending().values_list("index", flat=True)) == pending
    assert mixed_batch.executions.get(index=5).status == E.CANCELLED  # cancelled rows are not failures
    mixed_batch.refresh_from_db()
    assert mixed_batch.status == (S.RUNNING if pending else S.FINISHED)


def test_retry_json_retries_one_row(controller, mixed_batch):
    data = retry_data(mixed_batch, "one", [1])

    response = controller.post(url("batch_retry_json", mixed_batch.pk), data)

    assert response.json() == {"retried": 1, "skipped": 0, "message": "Retrying 1 failed execution."}
    assert list(mixed_batch.executions.pending().values_list("index", flat=True)) == [1]


def test_retry_json_reports_a_bad_request(controller, mixed_batch):
    response = controller.post(url("batch_retry_json", mixed_batch.pk), {"scope": "selected"})

    assert response.status_code == 400
    assert response.json()["error"] == "Select at least one execution to retry."
    assert not mixed_batch.executions.pending().exists()


def test_retry_of_rows_of_another_batch_does_nothing(controller, mixed_batch, make_batch):
    other = make_batch(rows=2, status=S.FINISHED)
    fail_rows(other, 2)

    response = controller.post(url("batch_retry_json", mixed_batch.pk), {"one": other.executions.first().pk})

    assert response.json()["retried"] == 0
    assert other.executions.failed().count() == 2


# --------------------------------------------------------------------------- executions


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


# --------------------------------------------------------------------------- new batch


CSV_ROWS = "\n".join(["text;lang"] + [f"line {i};zh" for i in range(25)]) + "\n"


def upload(client: Client, workflow: Any, file: SimpleUploadedFile, **kwargs: Any) -> Any:
    return client.post(url("batch_upload"), {"workflow": workflow.pk, "file": file}, **kwargs)


def test_new_batch_page_lists_workflows_with_template_links(controller, make_workflow):
    workflow = make_workflow(name="summarise")

    html = controller.get(url("batch_new")).content.decode()

    assert "summarise" in html
    assert url("workflow_template", workflow.pk) in html
    assert 'enctype="multipart/form-data"' in html


def test_new_batch_page_without_workflows_points_to_the_admin(controller, db):
    html = controller.get(url("batch_new")).content.decode()

    assert reverse("admin:batches_workflow_add") in html


def test_upload_preview_and_import_create_the_batch(controller, make_workflow, uploads):
    workflow = make_workflow(base_url="http://127.0.0.1:9/v1", concurrency=4)

    preview = upload(controller, workflow, csv_upload(BOM + CSV_ROWS.encode(), "orders.csv"), follow=True)

    assert preview.redirect_chain == [(url("batch_preview"), 302)]
    context = preview.context
    assert (context["parsed"].format, context["parsed"].columns) == ("csv", ["text", "lang"])
    assert (str(context["encoding"]), str(context["delimiter"])) == ("UTF-8 with BOM", "semicolon (;)")
    assert context["variables"] is None
    assert len(context["rows"]) == 20
    assert context["rows"][0] == ["line 0", "zh"]
    assert context["form"].initial == {"name": "orders", "concurrency": 4, "max_retries": 2, "start": True}
    assert "could not be read" in preview.content.decode()
    assert len(list(uploads.iterdir())) == 1

    data = {"name": "Orders May", "concurrency": 3, "max_retries": 1, "start": "on"}
    response = controller.post(url("batch_import"), data, follow=True)

    batch = BatchTask.objects.get()
    assert response.redirect_chain == [(url("batch_detail", batch.pk), 302)]
    assert messages_of(response) == [("success", "Imported 25 rows.")]
    assert (batch.name, batch.source_filename, batch.total, batch.status) == ("Orders May", "orders.csv", 25, S.RUNNING)
    assert (batch.concurrency, batch.max_retries, batch.created_by_id) == (3, 1, response.context["user"].pk)
    assert batch.executions.get(index=24).inputs == {"text": "line 24", "lang": "zh"}
    assert list(uploads.iterdir()) == []
    assert views.UPLOAD_SESSION_KEY not in controller.session


def test_import_without_start_leaves_the_batch_pending(controller, make_workflow):
    workflow = make_workflow()
    upload(controller, workflow, csv_upload("text\nhello\n"))

    controller.post(url("batch_import"), {"name": "", "concurrency": 2, "max_retries": 2})

    batch = BatchTask.objects.get()
    assert (batch.name, batch.status, batch.total) == ("rows", S.PENDING, 1)


def test_preview_maps_labels_to_the_apps_input_variables(controller, make_workflow, variables):
    variables([InputVariable("text", "Source text", required=True), InputVariable("lang", "Language")])
    workflow = make_workflow()

    response = upload(controller, workflow, csv_upload("Source text\nhello\n"), follow=True)

    mapping = response.context["mapping"]
    assert [(column, variable.variable) for column, variable in mapping] == [("text", "text")]
    assert [variable.variable for variable in response.context["unused"]] == ["lang"]
    assert "Source text" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("rows.csv", "Text,extra\nhello,1\n", "unknown column(s) 'extra'"),
        ("rows.csv", "lang\nzh\n", "missing required column 'text' (label 'Text')"),
    ],
)
def test_columns_that_do_not_fit_the_app_are_refused(controller, make_workflow, variables, name, content, error):
    variables([InputVariable("text", "Text", required=True), InputVariable("lang", "lang")])
    workflow = make_workflow()

    response = upload(controller, workflow, csv_upload(content, name), follow=True)

    assert response.redirect_chain[-1] == (url("batch_new"), 302)
    [(level, text)] = messages_of(response)
    assert level == "error"
    assert error in text
    assert BatchTask.objects.count() == 0


BAD_FILES = [
    # (file name, content, what the page says)
    ("rows.pdf", b"%PDF-1.4", "Unsupported file type: use CSV, XLSX or JSONL."),
    ("rows.csv", b"", "The submitted file is empty."),
    ("rows.csv", b"a,b\n1,2\n3,4,5\n", "The file cannot be imported: line 3: expected 2 fields, found 3"),
    ("rows.csv", b"a,b\n", "The file cannot be imported: the file has a header but no data rows"),
    ("rows.csv", b"PK\x03\x04 zip", "The file cannot be imported: the file looks binary"),
    ("rows.csv", b"text\n\xff\xfe\xfa\n", "cannot be decoded as UTF-8 or GB18030"),
    ("rows.jsonl", b'{"a": 1}\n{"a": \n', "The file cannot be imported: line 2: invalid JSON"),
    ("rows.xlsx", b"not a workbook", "The file cannot be imported: not a valid XLSX file"),
]


@pytest.mark.parametrize(("name", "content", "error"), BAD_FILES)
def test_bad_files_show_a_one_line_error_and_create_nothing(controller, make_workflow, uploads, name, content, error):
    workflow = make_workflow()

    response = upload(controller, workflow, csv_upload(content, name), follow=True)

    assert response.status_code in (200, 400)
    html = response.content.decode()
    assert error in html
    assert BatchTask.objects.count() == 0
    assert Execution.objects.count() == 0
    assert list(uploads.iterdir()) == []


def test_an_error_past_the_preview_is_reported_at_import_and_creates_nothing(controller, make_workflow, uploads):
    workflow = make_workflow()
    content = "text,lang\n" + "".join(f"row {i},zh\n" for i in range(40)) + "broken\n"
    upload(controller, workflow, csv_upload(content))

    response = controller.post(url("batch_import"), {"concurrency": 2, "max_retries": 2, "start": "on"}, follow=True)

    assert response.redirect_chain == [(url("batch_new"), 302)]
    assert messages_of(response) == [("error", "The file cannot be imported: line 42: expected 2 fields, found 1")]
    assert BatchTask.objects.count() == 0
    assert Execution.objects.count() == 0
    assert list(uploads.iterdir()) == []


def test_invalid_options_show_the_preview_again(controller, make_workflow, uploads):
    workflow = make_workflow()
    upload(controller, workflow, csv_upload("text\nhello\n"))

    response = controller.post(url("batch_import"), {"concurrency": 0, "max_retries": 2})

    assert response.status_code == 200
    assert response.context["form"].errors == {"concurrency": ["Ensure this value is greater than or equal to 1."]}
    assert BatchTask.objects.count() == 0
    assert len(list(uploads.iterdir())) == 1  # still there for a second try


@pytest.mark.parametrize("view", ["batch_preview", "batch_import"])
def test_preview_and_import_without_an_upload_go_back_to_the_upload_form(controller, db, view):
    request = controller.get if view == "batch_preview" else controller.post

    response = request(url(view), follow=True)

    assert response.redirect_chain == [(url("batch_new"), 302)]
    assert messages_of(response) == [("warning", "Upload a file first.")]


def test_a_new_upload_replaces_the_previous_one(controller, make_workflow, uploads):
    workflow = make_workflow()
    upload(controller, workflow, csv_upload("text\nfirst\n"))
    first = list(uploads.iterdir())

    upload(controller, workflow, csv_upload("text\nsecond\n"))

    second = list(uploads.iterdir())
    assert len(second) == 1 and second != first
    assert second[0].read_text() == "text\nsecond\n"


def test_uploads_abandoned_for_a_day_are_swept(controller, make_workflow, uploads):
    stale = uploads / ("0" * 32)
    stale.write_text("old")
    day_ago = time.time() - views.UPLOAD_MAX_AGE - 60
    os.utime(stale, (day_ago, day_ago))

    upload(controller, make_workflow(), csv_upload("text\nnew\n"))

    assert not stale.exists()


def test_uploads_wait_in_a_private_folder_of_the_temporary_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(views.tempfile, "gettempdir", lambda: str(tmp_path))

    folder = UPLOADS_DIR()

    assert folder == tmp_path / "batches-uploads"
    assert folder.stat().st_mode & 0o777 == 0o700


def test_preview_shows_jsonl_cells_as_json(controller, make_workflow):
    workflow = make_workflow()
    content = '{"text": "a", "meta": {"k": [1, 2]}, "n": 3}\n'

    response = upload(controller, workflow, csv_upload(content, "rows.jsonl"), follow=True)

    assert response.context["parsed"].format == "jsonl"
    assert response.context["rows"] == [["a", '{"k": [1, 2]}', "3"]]
    assert response.context["encoding"] is None


@pytest.mark.parametrize(
    ("mode", "found", "expected"),
    [
        ("workflow", [InputVariable("text", "Source text"), InputVariable("lang", "Language")], "Source text,Language"),
        ("chat", [InputVariable("topic", "Topic")], "query,Topic"),
    ],
)
def test_csv_template_has_the_variables_labels_and_a_bom(admin_client, make_workflow, mode, found, expected):
    workflow = make_workflow(name="My flow", mode=mode, input_variables=[dataclasses.asdict(v) for v in found])

    response = admin_client.get(url("workflow_template", workflow.pk))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="template-my-flow.csv"'
    assert response.content == BOM + expected.encode() + b"\r\n"


@pytest.mark.parametrize(
    ("found", "level", "text"),
    [
        (None, "error", "The input variables of wf-1 are not known yet: save the workflow while its app answers."),
        ([], "warning", "wf-1 declares no input variables: name the columns as you like."),
    ],
)
def test_csv_template_without_variables_explains_why(controller, make_workflow, found, level, text):
    workflow = make_workflow(input_variables=found)

    response = controller.get(url("workflow_template", workflow.pk), follow=True)

    assert response.redirect_chain == [(f"{url('batch_new')}?workflow={workflow.pk}", 302)]
    assert messages_of(response) == [(level, text)]


# --------------------------------------------------------------------------- exports, secrets, escaping


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


def test_no_page_or_export_shows_the_api_key(admin_client, make_batch, make_workflow):
    batch = make_batch(workflow=make_workflow(api_key=SECRET), status=S.RUNNING)
    fail_rows(batch, 1)
    execution = batch.executions.get(index=0)
    urls = [url("batch_list"), url("batch_detail", batch.pk), url("batch_failures", batch.pk)]
    urls += [url("batch_progress_json", batch.pk), url("batch_failures_json", batch.pk), url("batch_new")]
    urls += [url("execution_detail", execution.pk)]
    urls += [url("batch_export", batch.pk, fmt) for fmt in ("csv", "jsonl")]

    bodies = [b"".join(admin_client.get(page)) for page in urls]

    assert all(SECRET.encode() not in body for body in bodies)


MARKUP = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_markup_in_names_inputs_outputs_and_errors_is_escaped(admin_client, make_batch):
    batch = make_batch(rows=2, name="<b>bold</b>", status=S.RUNNING, source_filename=f"{MARKUP}.csv")
    fail_rows(batch, 1, error=MARKUP)
    execution = batch.executions.get(index=0)
    Execution.objects.filter(pk=execution.pk).update(inputs={"text": MARKUP}, outputs={"html": MARKUP})
    Attempt.objects.create(execution=execution, number=1, outcome=Attempt.Outcome.FAILED, error=MARKUP)
    pages = [url("batch_list"), url("batch_detail", batch.pk), url("batch_failures", batch.pk)]
    pages += [url("execution_detail", execution.pk)]

    html = {page: admin_client.get(page).content.decode() for page in pages}

    for page, body in html.items():
        assert "<b>bold</b>" not in body, page
        assert MARKUP not in body, page
    assert "&lt;b&gt;bold&lt;/b&gt;" in html[url("batch_list")]
    assert ESCAPED in html[url("batch_detail", batch.pk)]
    assert ESCAPED in html[url("batch_failures", batch.pk)]
    assert html[url("execution_detail", execution.pk)].count("&lt;script&gt;") >= 4  # inputs, outputs, 2 errors


def test_markup_in_an_uploaded_file_name_and_cells_is_escaped(controller, make_workflow):
    workflow = make_workflow()

    response = upload(controller, workflow, csv_upload(f"text\n{MARKUP}\n", "<b>x.csv"), follow=True)

    html = response.content.decode()
    assert "<b>x" not in html and "&lt;b&gt;x.csv" in html
    assert MARKUP not in html and ESCAPED in html


def test_data_given_to_the_script_is_json_escaped(admin_client, make_batch):
    batch = make_batch(rows=1, status=S.PAUSED, status_reason=f"</script>{MARKUP}")

    html = admin_client.get(url("batch_detail", batch.pk)).content.decode()

    script = html.split('<script id="progress-data" type="application/json">')[1].split("</script>")[0]
    assert "\\u003C/script\\u003E" in script
    assert json.loads(script)["status_reason"] == f"</script>{MARKUP}"


def test_base_layout_links_batches_admin_and_logout(admin_client):
    html = admin_client.get(url("batch_list")).content.decode()

    assert 'href="/admin/"' in html
    assert f'action="{reverse("admin:logout")}"' in html
    assert "/static/batches/batches.css" in html
    assert "/static/batches/batches.js" in html


# --------------------------------------------------------------------------- Simplified Chinese


ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}


@pytest.mark.parametrize(
    ("page", "chinese"),
    [
        (lambda b, e: url("batch_list"), ["批次", "新建批次", "状态", "进度"]),
        (lambda b, e: url("batch_detail", b.pk), ["按错误类型", "导出", "成功", "失败"]),
        (lambda b, e: url("batch_failures", b.pk), ["失败记录", "重试所有失败"]),
        (lambda b, e: url("execution_detail", e.pk), ["输入", "输出", "尝试"]),
        (lambda b, e: url("batch_new"), ["新建批次", "下载 CSV 模板"]),
    ],
)
def test_pages_are_translated_to_simplified_chinese(admin_client, target, page, chinese):
    html = admin_client.get(page(*target), **ZH).content.decode()

    assert '<html lang="zh-hans">' in html
    for text in chinese:
        assert text in html


def test_messages_and_json_are_translated_too(admin_client, failed_batch):
    response = admin_client.post(action_url(failed_batch, "retry-failed"), follow=True, **ZH)
    data = admin_client.get(url("batch_progress_json", failed_batch.pk), **ZH).json()

    assert messages_of(response) == [("success", "正在重试 2 个失败的执行。")]
    assert data["status_display"] == "运行中"


def test_english_stays_the_default(admin_client, db):
    html = admin_client.get(url("batch_list"), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert '<html lang="en">' in html
    assert "New batch" in html


# --------------------------------------------------------------------------- 100,000 rows


def build_big_batch(make_batch: Any, rows: int = 100_000) -> BatchTask:
    """A finished-looking batch: 90% succeeded, 5% failed of three types, the rest pending."""
    batch = make_batch(rows=0, status=S.RUNNING)
    kinds = [ErrorType.TIMEOUT, ErrorType.UPSTREAM_ERROR, ErrorType.INVALID_INPUT]
    now = timezone.now()
    for start in range(0, rows, 5_000):
        chunk = []
        for index in range(start, min(start + 5_000, rows)):
            fields: dict[str, Any] = {"status": E.PENDING}
            if index % 20 == 0:
                fields = {"status": E.FAILED, "error_type": kinds[index % 3], "error": "boom", "finished_at": now}
            elif index % 10 != 5:
                fields = {"status": E.SUCCEEDED, "total_tokens": 10, "outputs": {"answer": "ok"}, "finished_at": now}
            chunk.append(Execution(batch=batch, index=index, inputs={"text": f"row {index}"}, **fields))
        Execution.objects.bulk_create(chunk)
    return batch


def test_pages_stay_fast_and_constant_in_queries_with_100k_rows(
    login, make_batch, django_assert_max_num_queries, capsys
):
    client = login(CONTROL, RETRY, ADD)
    batch = build_big_batch(make_batch)
    failed = batch.executions.filter(status=E.FAILED).order_by("index").last()
    pages = [
        url("batch_list"),
        url("batch_detail", batch.pk),
        url("batch_progress_json", batch.pk),
        url("batch_failures", batch.pk),
        url("batch_failures", batch.pk) + "?page=50",
        url("batch_failures", batch.pk) + "?error_type=timeout&page=7",
        url("batch_failures_json", batch.pk) + "?error_type=invalid_input&page=3",
        url("execution_detail", failed.pk),
    ]
    client.get(url("batch_list"))  # warm the session and permission caches

    timings = {}
    for page in pages:
        with django_assert_max_num_queries(10):
            started = time.perf_counter()
            response = client.get(page)
            timings[page] = time.perf_counter() - started
        assert response.status_code == 200, page

    with capsys.disabled():
        print("\n" + "\n".join(f"  {1000 * seconds:6.1f} ms  {page}" for page, seconds in timings.items()))
    assert response.context["execution"].pk == failed.pk
    assert max(timings.values()) < 1.0  # generous: about 0.1 s each on a developer machine
