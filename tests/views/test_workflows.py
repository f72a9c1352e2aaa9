"""The workflows page (views.workflows): list, add, edit with a write-only key, test connection against the fake,
permissions; its notifications: the webhook secret shown once, "Send test", the last deliveries, and
`add_workflow`'s notification options."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batches.dify.hosts import CONNECT_FAILED
from batches.models import Notification, Workflow, WorkflowThrottle
from fakedify.harness import FakeDifyProcess, free_port, running_fake_dify

SECRET = "app-TOP-SECRET-KEY-17"
VIEW, ADD, CHANGE = "batches.view_workflow", "batches.add_workflow", "batches.change_workflow"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--variables", "city:City:required,tone:Tone") as server:
        yield server


def form_data(workflow: Workflow | None = None, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "Weather",
        "mode": "workflow",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "",
        "response_mode": "streaming",
        "timeout": 60,
        "rpm_limit": "",
        "concurrency": 5,
        "retry_workflow_failed": "on",
    }
    if workflow is not None:
        data.update(name=workflow.name, base_url=workflow.base_url, mode=workflow.mode)
    return {**data, **changes}


def test_add_stores_the_key_and_never_shows_it(login: Any) -> None:
    client = login(ADD, CHANGE, VIEW)

    response = client.post(reverse("batches:workflow_add"), form_data(api_key=SECRET), follow=True)

    workflow = Workflow.objects.get(name="Weather")
    assert workflow.api_key == SECRET and workflow.timeout == 60
    for url in (reverse("batches:workflow_list"), reverse("batches:workflow_edit", args=[workflow.pk])):
        assert SECRET not in client.get(url).content.decode()
    assert SECRET not in response.content.decode()


def test_add_needs_a_key(login: Any) -> None:
    client = login(ADD)

    response = client.post(reverse("batches:workflow_add"), form_data())

    assert response.status_code == 400 and not Workflow.objects.exists()


def test_edit_without_a_key_keeps_the_stored_one(login: Any, make_workflow: Any) -> None:
    workflow = make_workflow(api_key=SECRET)
    client = login(CHANGE)

    response = client.post(reverse("batches:workflow_edit", args=[workflow.pk]), form_data(workflow, concurrency=42))

    workflow.refresh_from_db()
    assert response.status_code == 302 and (workflow.concurrency, workflow.api_key) == (42, SECRET)


def test_a_new_base_url_needs_the_key_again(login: Any, make_workflow: Any) -> None:
    workflow = make_workflow(api_key=SECRET)
    client = login(CHANGE)
    moved = form_data(workflow, base_url="https://attacker.example/v1")

    refused = client.post(reverse("batches:workflow_edit", args=[workflow.pk]), moved)
    accepted = client.post(reverse("batches:workflow_edit", args=[workflow.pk]), {**moved, "api_key": "app-new-key"})

    assert refused.status_code == 400 and "enter the API key again" in refused.content.decode()
    workflow.refresh_from_db()
    assert accepted.status_code == 302 and (workflow.base_url, workflow.api_key) == (moved["base_url"], "app-new-key")


def test_connection_shows_the_apps_variables(login: Any, make_workflow: Any, fake: FakeDifyProcess) -> None:
    workflow = make_workflow(base_url=fake.url, api_key=SECRET)
    client = login(CHANGE)

    html = client.post(reverse("batches:workflow_test", args=[workflow.pk])).content.decode()

    assert "Connected" in html and "<code>city</code>" in html and "<code>tone</code>" in html
    assert SECRET not in html


def test_connection_shows_the_401(login: Any, make_workflow: Any, fake: FakeDifyProcess) -> None:
    workflow = make_workflow(base_url=fake.url, api_key="app-revoked-key-123456")
    client = login(CHANGE)

    html = client.post(reverse("batches:workflow_test", args=[workflow.pk])).content.decode()

    assert "auth: HTTP 401 unauthorized: Access token is invalid" in html
    assert "app-revoked-key-123456" not in html


def test_connection_shows_an_unreachable_host(login: Any, make_workflow: Any) -> None:
    workflow = make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=SECRET)
    client = login(CHANGE)

    html = client.post(reverse("batches:workflow_test", args=[workflow.pk])).content.decode()

    # One text for every connection failure (issue 27, L1): no "Connect call failed" vs "Server disconnected".
    assert "The connection failed" in html and f"connection: {CONNECT_FAILED}" in html
    assert "Errno" not in html and "Connect call failed" not in html


@pytest.mark.parametrize(
    ("perms", "expected"),
    [
        ((), {"list": 403, "add": 403, "edit": 403, "test": 403}),
        ((VIEW,), {"list": 200, "add": 403, "edit": 403, "test": 403}),
        ((ADD,), {"list": 403, "add": 200, "edit": 403, "test": 403}),
        ((CHANGE,), {"list": 200, "add": 403, "edit": 200, "test": 200}),
    ],
)
def test_permissions_are_the_admins(login: Any, make_workflow: Any, perms: tuple, expected: dict) -> None:
    workflow = make_workflow(base_url=f"http://127.0.0.1:{free_port()}/v1")
    client = login(*perms)

    seen = {
        "list": client.get(reverse("batches:workflow_list")).status_code,
        "add": client.get(reverse("batches:workflow_add")).status_code,
        "edit": client.get(reverse("batches:workflow_edit", args=[workflow.pk])).status_code,
        "test": client.post(reverse("batches:workflow_test", args=[workflow.pk])).status_code,
    }

    assert seen == expected


def test_non_staff_are_sent_to_the_login(client: Client, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("plain"))

    assert client.get(reverse("batches:workflow_list")).status_code == 302


def test_the_list_shows_a_workflow_whose_upstream_is_down(login, make_workflow):
    workflow = make_workflow()
    now = timezone.now()
    WorkflowThrottle.objects.create(
        workflow=workflow, circuit="open", circuit_since=now, last_error="HTTP 502 upstream_error: down",
        next_probe_at=now + timedelta(seconds=5),
    )  # fmt: skip

    page = login("batches.view_workflow").get("/workflows/").content.decode()

    assert "Waiting for Dify since" in page and "HTTP 502 upstream_error: down" in page


def test_saving_a_workflow_whose_app_does_not_answer_warns_on_the_page(login: Any) -> None:
    client = login(ADD, CHANGE, VIEW)

    response = client.post(reverse("batches:workflow_add"), form_data(api_key=SECRET), follow=True)

    levels = [message.level_tag for message in response.context["messages"]]
    assert levels == ["success", "warning"]
    assert "did not answer GET /parameters" in response.content.decode()


def test_saving_a_workflow_whose_app_answers_does_not_warn(login: Any, fake: FakeDifyProcess) -> None:
    client = login(ADD, CHANGE, VIEW)

    response = client.post(reverse("batches:workflow_add"), form_data(api_key=SECRET, base_url=fake.url), follow=True)

    assert [message.level_tag for message in response.context["messages"]] == ["success"]


def test_the_list_offers_new_batch_only_to_those_who_may_add_batches(login: Any, make_workflow) -> None:
    workflow = make_workflow()
    link = f"{reverse('batches:batch_new')}?workflow={workflow.pk}"

    viewer = login(VIEW).get(reverse("batches:workflow_list")).content.decode()
    adder = login(VIEW, "batches.add_batchtask").get(reverse("batches:workflow_list")).content.decode()

    assert link not in viewer and link in adder


def test_the_workflow_form_shows_a_whole_timeout_and_the_add_forms_own_key_help(
    admin_client: Any, make_workflow
) -> None:
    workflow = make_workflow(timeout=600.0)

    edit = admin_client.get(reverse("batches:workflow_edit", args=[workflow.pk])).content.decode()
    add = admin_client.get(reverse("batches:workflow_add")).content.decode()

    assert 'value="600"' in edit and 'value="600.0"' not in edit
    assert "Leave blank to keep the stored key" in edit and "Leave blank to keep the stored key" not in add


@pytest.fixture
def editor(login):
    return login("batches.change_workflow", "batches.view_workflow")


def test_a_new_webhook_secret_is_shown_once(editor, make_workflow):
    workflow = make_workflow(webhook_url="http://127.0.0.1:9/hook")

    shown = editor.post(reverse("batches:workflow_webhook_secret", args=[workflow.pk]))
    later = editor.get(reverse("batches:workflow_edit", args=[workflow.pk]))

    secret = Workflow.objects.get(pk=workflow.pk).webhook_secret
    assert len(secret) >= 32
    assert secret in shown.content.decode() and shown["Cache-Control"] == "no-store"
    assert secret not in later.content.decode()


def test_send_test_queues_messages_and_the_page_lists_them(editor, make_workflow):
    workflow = make_workflow(webhook_url="http://127.0.0.1:9/hook", notify_emails=["ops@example.com"])

    editor.post(reverse("batches:workflow_notify_test", args=[workflow.pk]))
    page = editor.get(reverse("batches:workflow_edit", args=[workflow.pk])).content.decode()

    assert sorted(Notification.objects.values_list("channel", flat=True)) == ["email", "webhook"]
    assert page.count("<td>Test</td>") == 2


def test_a_viewer_cannot_rotate_the_secret(login, make_workflow):
    client = login("batches.view_workflow")
    workflow = make_workflow()

    answer = client.post(reverse("batches:workflow_webhook_secret", args=[workflow.pk]))

    assert answer.status_code == 403
    assert Workflow.objects.get(pk=workflow.pk).webhook_secret == ""


def test_add_workflow_takes_the_notification_options(db, capsys):
    call_command(
        "add_workflow",
        "notified",
        "--base-url=http://127.0.0.1:9/v1",
        "--api-key=app-x",
        "--notify-email=a@example.com",
        "--notify-email=b@example.com",
        "--webhook-url=https://hooks.example.com/batches",
        "--webhook-secret=whsec-1",
        "--price-per-1k-tokens=0.002",
    )

    workflow = Workflow.objects.get(name="notified")
    assert workflow.notify_emails == ["a@example.com", "b@example.com"]
    assert (workflow.webhook_url, workflow.webhook_secret) == ("https://hooks.example.com/batches", "whsec-1")
    assert str(workflow.price_per_1k_tokens) == "0.002000"
    assert "whsec-1" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "options",
    [
        ["--webhook-url=http://169.254.169.254/x", "--webhook-secret=s"],
        ["--webhook-url=https://hooks.example.com/x"],
        ["--notify-email=not-an-address"],
    ],
)
def test_add_workflow_refuses_bad_notification_options(db, options):
    with pytest.raises(CommandError):
        call_command("add_workflow", "bad", "--base-url=http://127.0.0.1:9/v1", "--api-key=app-x", *options)
