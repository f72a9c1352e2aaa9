"""The workflow page's notifications: the webhook secret shown once, "Send test", the last deliveries."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from batches.models import Notification, Workflow


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
