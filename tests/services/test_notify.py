"""Notifications: outbox rows written with the transition, signed webhooks, emails, retries, order, crashes."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from batches.choices import BatchStatus, CircuitState, ExecutionStatus
from batches.models import Execution, Notification, WorkflowThrottle
from batches.services import lifecycle, notify, transitions
from tests.processes import ROOT, child_env
from tests.webhook_receiver import receiving

LATER = timedelta(hours=2)


@pytest.fixture
def notified_batch(make_batch, make_workflow, django_user_model):
    def make(url="", emails=True):
        creator = django_user_model.objects.create_user("creator", email="creator@example.com" if emails else "")
        notify_emails = ["ops@example.com"] if emails else []
        workflow = make_workflow(webhook_url=url, webhook_secret="s3cret", notify_emails=notify_emails)
        return make_batch(rows=3, workflow=workflow, status=BatchStatus.RUNNING, created_by=creator, name="Nightly")

    return make


def finish_all(batch, failed=1):
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.SUCCEEDED)
    Execution.objects.filter(batch=batch, index__lt=failed).update(status=ExecutionStatus.FAILED)
    transitions.finish_done([batch.pk])


def test_finishing_sends_a_signed_webhook_that_a_receiver_verifies(notified_batch, settings):
    settings.BATCHES_SITE_URL = "https://batches.example.com"
    with receiving() as receiver:
        batch = notified_batch(receiver.url)
        finish_all(batch)

        notify.deliver_due()

    assert receiver.events() == ["batch.finished"]
    assert receiver.received[0]["signed"]
    body = receiver.received[0]["body"]
    assert body["event"] == "batch.finished" and body["sent_at"]
    assert body["batch"] == {
        "id": batch.pk,
        "name": "Nightly",
        "status": "finished",
        "reason": "",
        "total": 3,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
        "url": f"https://batches.example.com/batches/{batch.pk}/",
    }


def test_a_signature_under_another_secret_does_not_verify(notified_batch):
    with receiving(secret="not-the-secret") as receiver:
        finish_all(notified_batch(receiver.url))

        notify.deliver_due()

    assert receiver.received and not receiver.received[0]["signed"]


def test_the_email_names_the_batch_its_counts_and_its_link(notified_batch, settings):
    settings.BATCHES_SITE_URL = "https://batches.example.com"
    batch = notified_batch()
    finish_all(batch)

    notify.deliver_due()

    [message] = mail.outbox
    assert sorted(message.to) == ["creator@example.com", "ops@example.com"]
    assert "Nightly" in message.subject and f"#{batch.pk}" in message.subject
    assert "succeeded 2, failed 1, cancelled 0" in message.body
    assert f"https://batches.example.com/batches/{batch.pk}/" in message.body


@pytest.mark.parametrize(
    ("act", "event", "status", "reason"),
    [
        (lambda batch: lifecycle.pause_batch(batch.pk, reason="checking"), "paused", "paused", "checking"),
        (lambda batch: transitions.pause(batch.pk, reason="app_error: unpublished"), "paused", "paused", "app_error"),
        (lambda batch: lifecycle.cancel_batch(batch.pk), "cancelled", "cancelled", ""),
        (lambda batch: finish_all(batch, failed=0), "finished", "finished", ""),
    ],
)
def test_each_transition_writes_one_row_per_channel_with_its_state(notified_batch, act, event, status, reason):
    batch = notified_batch("http://127.0.0.1:9/hook")

    act(batch)

    rows = Notification.objects.filter(batch=batch)
    assert sorted(rows.values_list("channel", flat=True)) == ["email", "webhook"]
    assert {row.event for row in rows} == {event}
    assert {row.payload["status"] for row in rows} == {status}
    assert all(row.payload["reason"].startswith(reason) for row in rows)


def test_a_refused_transition_writes_nothing(notified_batch):
    batch = notified_batch("http://127.0.0.1:9/hook")
    lifecycle.cancel_batch(batch.pk)

    with pytest.raises(transitions.TransitionError):
        lifecycle.pause_batch(batch.pk)

    assert set(Notification.objects.values_list("event", flat=True)) == {"cancelled"}


def test_a_receiver_that_is_down_gets_it_later_with_backoff(notified_batch):
    with receiving(answers=[503, 503]) as receiver:
        finish_all(notified_batch(receiver.url, emails=False))
        now = timezone.now()

        first = notify.deliver_due(now=now)
        row = Notification.objects.get()
        second = notify.deliver_due(now=row.next_at + timedelta(seconds=1))
        after_two = Notification.objects.get()
        third = notify.deliver_due(now=now + LATER)

    assert (first, second, third) == (0, 0, 1)
    assert row.status == "pending" and row.tries == 1 and row.next_at > now and "503" in row.answer
    assert after_two.next_at - row.next_at > row.next_at - now  # the wait grows
    assert receiver.events() == ["batch.finished"]
    assert Notification.objects.get().status == "delivered"


def test_a_batch_s_messages_go_out_in_order(notified_batch):
    with receiving(answers=[500]) as receiver:
        batch = notified_batch(receiver.url, emails=False)
        lifecycle.pause_batch(batch.pk, reason="first")
        lifecycle.cancel_batch(batch.pk)
        now = timezone.now()

        notify.deliver_due(now=now)  # the pause fails: the cancel must wait for it
        waiting = list(receiver.events())
        notify.deliver_due(now=now + LATER)

    assert waiting == []
    assert receiver.events() == ["batch.paused", "batch.cancelled"]


def test_a_row_left_unsent_by_a_crash_after_the_commit_is_sent_by_the_sweep(notified_batch):
    with receiving() as receiver:
        batch = notified_batch(receiver.url, emails=False)
        lifecycle.cancel_batch(batch.pk)  # committed; the wake-up (on commit) never ran, as if the process died

        due = notify.sweep()
        notify.deliver_due()

    assert due == 1
    assert receiver.events() == ["batch.cancelled"]


def test_a_sender_never_sends_what_another_holds(notified_batch):
    with receiving() as receiver:
        finish_all(notified_batch(receiver.url, emails=False))
        now = timezone.now()
        assert notify._claim(Notification.objects.get().pk, now)

        sent = notify.deliver_due(now=now)

    assert sent == 0 and receiver.events() == []


def test_a_batch_waiting_for_dify_too_long_is_told_once_per_outage(notified_batch, settings):
    settings.BATCHES_NOTIFY_WAITING_MINUTES = 10
    batch = notified_batch("http://127.0.0.1:9/hook")
    now = timezone.now()
    since = now - timedelta(minutes=11)
    WorkflowThrottle.objects.create(workflow=batch.workflow, circuit=CircuitState.OPEN, circuit_since=since)

    first = notify.note_waiting(now)
    second = notify.note_waiting(now + timedelta(minutes=5))
    WorkflowThrottle.objects.filter(pk=batch.workflow_id).update(circuit_since=now + timedelta(minutes=6))
    next_outage = notify.note_waiting(now + timedelta(minutes=20))

    assert (first, second, next_outage) == ([batch.pk], [], [batch.pk])
    assert Notification.objects.filter(event="waiting", channel="webhook").count() == 2


def test_a_short_outage_tells_no_one(notified_batch, settings):
    settings.BATCHES_NOTIFY_WAITING_MINUTES = 10
    batch = notified_batch("http://127.0.0.1:9/hook")
    now = timezone.now()
    WorkflowThrottle.objects.create(workflow=batch.workflow, circuit=CircuitState.OPEN, circuit_since=now)

    assert notify.note_waiting(now + timedelta(minutes=9)) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://user:pass@hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "http://other.example.net/x",
    ],
)
def test_a_webhook_url_obeys_the_upstream_host_rules(make_workflow, settings, url):
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["127.0.0.1", "*.example.com", "169.254.0.0/16"][:2]
    workflow = make_workflow(webhook_url=url)

    with pytest.raises(ValidationError) as caught:
        workflow.full_clean()

    assert "webhook_url" in caught.value.message_dict


def test_an_allowed_webhook_url_with_a_query_is_accepted(make_workflow, settings):
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["*.example.com"]
    workflow = make_workflow(base_url="https://api.example.com/v1", webhook_url="https://hooks.example.com/x?k=1")

    workflow.full_clean()


def test_send_test_queues_a_test_message_per_channel(notified_batch):
    with receiving() as receiver:
        batch = notified_batch(receiver.url)

        queued = notify.send_test(batch.workflow_id)
        notify.deliver_due()

    assert queued == 2
    assert receiver.events() == ["batch.test"] and receiver.received[0]["signed"]
    assert len(mail.outbox) == 1


def test_a_rotated_secret_signs_from_then_on(notified_batch):
    with receiving() as receiver:
        batch = notified_batch(receiver.url, emails=False)
        receiver.secret = notify.rotate_webhook_secret(batch.workflow_id)
        finish_all(batch)

        notify.deliver_due()

    assert receiver.received[0]["signed"]


SENDER = """
import django; django.setup()
from batches.services import notify
notify.deliver_due()
"""


@pytest.mark.django_db(transaction=True)
def test_a_sender_killed_mid_send_leaves_the_message_to_be_sent_again(notified_batch):
    """A real process is SIGKILLed while its POST waits for the receiver; the row is sent again once its claim
    expires (at least once)."""
    hang = threading.Event()
    with receiving(hang=hang) as receiver:
        batch = notified_batch(receiver.url, emails=False)
        finish_all(batch)
        env = child_env(DJANGO_SETTINGS_MODULE="batchsite.settings")
        sender = subprocess.Popen([sys.executable, "-c", SENDER], cwd=ROOT, env=env, start_new_session=True)
        try:
            assert receiver.seen.wait(20), "the sender never posted"
            os.kill(sender.pid, signal.SIGKILL)
            sender.wait(10)
        finally:
            sender.kill()
        hang.set()
        held = Notification.objects.get()
        time.sleep(0.2)  # the receiver finishes the killed sender's request: it got it, the sender never knew

        notify.deliver_due(now=held.claimed_until + timedelta(seconds=1))

    assert held.status == "pending" and held.claimed_until is not None
    assert [item["body"]["batch"]["id"] for item in receiver.received] == [batch.pk, batch.pk]  # at least once
    assert Notification.objects.get().status == "delivered"
