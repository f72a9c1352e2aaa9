"""Staff pages: access rules, the batch list and detail, exports and the control buttons."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from batches.models import BatchStatus, BatchTask, ErrorType, Execution, ExecutionStatus

S = BatchStatus
SECRET = "app-TOP-SECRET-KEY-123"
VIEWS = {
    # view name: (HTTP method, URL arguments after the batch id)
    "batch_list": ("get", None),
    "batch_detail": ("get", []),
    "batch_export": ("get", ["csv"]),
    "batch_action": ("post", ["pause"]),
}


def view_url(view: str, batch: BatchTask) -> str:
    extra = VIEWS[view][1]
    return reverse(f"batches:{view}", args=None if extra is None else [batch.pk, *extra])


def action_url(batch: BatchTask, action: str) -> str:
    return reverse("batches:batch_action", args=[batch.pk, action])


def fail_rows(batch: BatchTask, count: int, error: str = "boom") -> None:
    rows = Execution.objects.filter(batch=batch, index__lt=count)
    rows.update(status=ExecutionStatus.FAILED, error_type=ErrorType.UPSTREAM_ERROR, error=error)


@pytest.fixture
def login(client: Client, django_user_model: Any) -> Any:
    """Log the test client in as a new user with the given permissions ("app.codename")."""

    def login(*perms: str, staff: bool = True) -> Client:
        user = django_user_model.objects.create_user(f"user{django_user_model.objects.count()}", is_staff=staff)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client.force_login(user)
        return client

    return login


@pytest.fixture
def controller(login: Any) -> Client:
    return login("batches.control_batchtask", "batches.retry_execution")


@pytest.mark.parametrize("view", VIEWS)
def test_anonymous_users_are_sent_to_the_login_page(client, make_batch, view):
    batch = make_batch(status=S.RUNNING)

    response = getattr(client, VIEWS[view][0])(view_url(view, batch))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    batch.refresh_from_db()
    assert batch.status == S.RUNNING


@pytest.mark.parametrize("view", VIEWS)
def test_users_who_are_not_staff_are_sent_to_the_login_page(login, make_batch, view):
    client = login("batches.control_batchtask", staff=False)
    batch = make_batch(status=S.RUNNING)

    response = getattr(client, VIEWS[view][0])(view_url(view, batch))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    batch.refresh_from_db()
    assert batch.status == S.RUNNING


@pytest.mark.parametrize("view", ["batch_list", "batch_detail", "batch_export"])
def test_staff_without_permissions_can_read_the_pages(login, make_batch, view):
    client = login()
    batch = make_batch()

    response = client.get(view_url(view, batch))

    assert response.status_code == 200


@pytest.mark.parametrize("action", ["start", "pause", "resume", "cancel", "retry-failed"])
def test_staff_without_permission_get_403_for_every_action(login, make_batch, action):
    client = login()
    batch = make_batch(status=S.RUNNING)
    fail_rows(batch, 1)

    response = client.post(action_url(batch, action))

    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.status == S.RUNNING
    assert Execution.objects.failed().count() == 1


@pytest.mark.parametrize(
    ("permission", "action", "allowed"),
    [
        ("batches.control_batchtask", "pause", True),
        ("batches.control_batchtask", "retry-failed", False),
        ("batches.retry_execution", "pause", False),
        ("batches.retry_execution", "retry-failed", True),
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
    assert response.redirect_chain == [(reverse("batches:batch_detail", args=[batch.pk]), 302)]
    assert [(m.level_tag, m.message) for m in response.context["messages"]] == [(level, text)]


def test_retry_failed_sends_failed_rows_back_to_pending_and_reopens_the_batch(controller, make_batch):
    batch = make_batch(rows=3, status=S.FINISHED)
    fail_rows(batch, 2)

    response = controller.post(action_url(batch, "retry-failed"), follow=True)

    batch.refresh_from_db()
    assert batch.status == S.RUNNING
    assert Execution.objects.pending().count() == 3
    assert [m.message for m in response.context["messages"]] == ["Retrying 2 failed executions."]


def test_retry_failed_without_failed_rows_warns(controller, make_batch):
    batch = make_batch(status=S.FINISHED)

    response = controller.post(action_url(batch, "retry-failed"), follow=True)

    assert [(m.level_tag, m.message) for m in response.context["messages"]] == [
        ("warning", "No failed executions to retry.")
    ]


def test_actions_are_csrf_protected(django_user_model, make_batch):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root"))
    batch = make_batch(status=S.RUNNING)

    response = client.post(action_url(batch, "pause"))

    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.status == S.RUNNING


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", lambda batch: action_url(batch, "pause"), 405),
        ("post", lambda batch: action_url(batch, "explode"), 404),
        ("post", lambda batch: action_url(batch, "delete"), 404),
        ("get", lambda batch: reverse("batches:batch_export", args=[batch.pk, "pdf"]), 404),
        ("get", lambda batch: reverse("batches:batch_detail", args=[batch.pk + 1]), 404),
        ("post", lambda batch: reverse("batches:batch_list"), 405),
    ],
)
def test_wrong_methods_and_unknown_names_are_refused(admin_client, make_batch, method, url, status):
    batch = make_batch(status=S.RUNNING)

    response = getattr(admin_client, method)(url(batch))

    assert response.status_code == status


@pytest.mark.parametrize(
    ("status", "buttons", "hidden"),
    [
        (S.PENDING, ["start", "cancel", "retry-failed"], ["pause", "resume"]),
        (S.RUNNING, ["pause", "cancel", "retry-failed"], ["start", "resume"]),
        (S.PAUSED, ["resume", "cancel", "retry-failed"], ["start", "pause"]),
        (S.FINISHED, ["retry-failed"], ["start", "pause", "resume", "cancel"]),
    ],
)
def test_detail_offers_the_buttons_that_apply(controller, make_batch, status, buttons, hidden):
    batch = make_batch(status=status)

    html = controller.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert 'name="csrfmiddlewaretoken"' in html
    for action in buttons:
        assert f'action="{action_url(batch, action)}"' in html
    for action in hidden:
        assert f'action="{action_url(batch, action)}"' not in html


def test_detail_offers_no_buttons_without_permission(login, make_batch):
    client = login()
    batch = make_batch(status=S.RUNNING)

    response = client.get(reverse("batches:batch_detail", args=[batch.pk]))

    assert response.context["controls"] == []
    assert action_url(batch, "pause") not in response.content.decode()


def test_detail_shows_progress_failures_and_export_links(admin_client, make_batch):
    batch = make_batch(rows=4, status=S.RUNNING)
    fail_rows(batch, 1, error="quota exceeded")
    Execution.objects.filter(batch=batch, index=1).update(status=ExecutionStatus.SUCCEEDED, total_tokens=42)

    response = admin_client.get(reverse("batches:batch_detail", args=[batch.pk]))

    progress = response.context["progress"]
    assert (progress.pending, progress.succeeded, progress.failed, progress.percent) == (2, 1, 1, 50)
    html = response.content.decode()
    assert "quota exceeded" in html
    assert "upstream_error" in html
    for fmt in ("csv", "xlsx", "jsonl"):
        assert reverse("batches:batch_export", args=[batch.pk, fmt]) in html


def test_detail_lists_only_the_last_20_failures(admin_client, make_batch):
    batch = make_batch(rows=25, status=S.FINISHED)
    fail_rows(batch, 25)

    response = admin_client.get(reverse("batches:batch_detail", args=[batch.pk]))

    assert len(response.context["failures"]) == 20


@pytest.mark.parametrize(("status", "refreshes"), [(S.RUNNING, True), (S.PAUSED, False), (S.FINISHED, False)])
def test_detail_refreshes_itself_only_while_running(admin_client, make_batch, status, refreshes):
    batch = make_batch(status=status)

    html = admin_client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert ('http-equiv="refresh"' in html) is refreshes


def test_list_shows_batches_with_progress_and_links(admin_client, make_batch):
    batch = make_batch(rows=4, name="invoices", status=S.RUNNING)
    fail_rows(batch, 1)

    response = admin_client.get(reverse("batches:batch_list"))

    html = response.content.decode()
    assert "invoices" in html
    assert reverse("batches:batch_detail", args=[batch.pk]) in html
    assert '<progress value="1" max="4">' in html
    assert "1 failed" in html


def test_list_filters_by_status(admin_client, make_batch):
    make_batch(name="alpha", status=S.RUNNING)
    make_batch(name="omega", status=S.PAUSED)

    response = admin_client.get(reverse("batches:batch_list"), {"status": "paused"})

    assert [batch.name for batch, _ in response.context["rows"]] == ["omega"]


def test_list_ignores_an_unknown_status(admin_client, make_batch):
    make_batch(status=S.RUNNING)

    response = admin_client.get(reverse("batches:batch_list"), {"status": "bogus"})

    assert len(response.context["rows"]) == 1


def test_list_is_paginated_by_50(admin_client, make_batch, make_workflow):
    workflow = make_workflow()
    for _ in range(51):
        make_batch(rows=0, workflow=workflow)

    first = admin_client.get(reverse("batches:batch_list"))
    second = admin_client.get(reverse("batches:batch_list"), {"page": 2})

    assert len(first.context["rows"]) == 50
    assert len(second.context["rows"]) == 1


@pytest.mark.parametrize("batches", [1, 40])
def test_list_query_count_does_not_grow_with_batches(
    admin_client, make_batch, make_workflow, django_assert_max_num_queries, batches
):
    workflows = [make_workflow(), make_workflow()]
    for number in range(batches):
        make_batch(rows=2, workflow=workflows[number % 2])

    with django_assert_max_num_queries(6):
        response = admin_client.get(reverse("batches:batch_list"))

    assert len(response.context["rows"]) == batches


@pytest.mark.parametrize(
    ("fmt", "content_type", "starts_with"),
    [
        ("csv", "text/csv; charset=utf-8", b"\xef\xbb\xbf"),
        ("jsonl", "application/x-ndjson; charset=utf-8", b'{"id": '),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK"),
    ],
)
def test_export_streams_each_format_as_an_attachment(admin_client, make_batch, fmt, content_type, starts_with):
    batch = make_batch(rows=3, name="report")

    response = admin_client.get(reverse("batches:batch_export", args=[batch.pk, fmt]))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch.pk}-report.{fmt}"'
    assert b"".join(response.streaming_content).startswith(starts_with)


def test_no_page_or_export_shows_the_api_key(admin_client, make_batch, make_workflow):
    batch = make_batch(workflow=make_workflow(api_key=SECRET), status=S.RUNNING)
    fail_rows(batch, 1)
    urls = [reverse("batches:batch_list"), reverse("batches:batch_detail", args=[batch.pk])]
    urls += [reverse("batches:batch_export", args=[batch.pk, fmt]) for fmt in ("csv", "jsonl")]

    bodies = [b"".join(admin_client.get(url)) for url in urls]

    assert all(SECRET.encode() not in body for body in bodies)


def test_markup_in_names_inputs_and_errors_is_escaped(admin_client, make_batch):
    batch = make_batch(rows=2, name="<b>bold</b>", status=S.FINISHED)
    fail_rows(batch, 1, error="<script>alert(1)</script>")

    list_html = admin_client.get(reverse("batches:batch_list")).content.decode()
    detail_html = admin_client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert "<b>bold</b>" not in list_html + detail_html
    assert "&lt;b&gt;bold&lt;/b&gt;" in list_html
    assert "<script>alert(1)</script>" not in detail_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail_html


def test_base_layout_links_batches_admin_and_logout(admin_client):
    html = admin_client.get(reverse("batches:batch_list")).content.decode()

    assert 'href="/admin/"' in html
    assert f'action="{reverse("admin:logout")}"' in html
    assert "/static/batches/batches.css" in html
