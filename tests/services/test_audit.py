"""The audit log: each staff action from each face (pages, admin, command line) leaves one entry, and the system's
own transitions are listed with them."""

import getpass
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import AuditEntry, Execution, Workflow
from batches.services import lifecycle, recovery, transitions

PAGE_PERMS = ("batches.control_batchtask", "batches.retry_execution", "batches.view_batchtask")
OS_USER = f"os:{getpass.getuser()}"

# action: (the batch's state before, how many rows end failed)
STATES = {
    "start": (BatchStatus.PENDING, 0),
    "pause": (BatchStatus.RUNNING, 0),
    "resume": (BatchStatus.PAUSED, 0),
    "cancel": (BatchStatus.RUNNING, 0),
    "retry": (BatchStatus.FINISHED, 2),
}


def _page(client, batch, action):
    name = "retry-failed" if action == "retry" else action
    client.post(reverse("batches:batch_action", args=[batch.pk, name]))


def _admin(client, batch, action):
    name = "retry_failed" if action == "retry" else action
    client.post(reverse("admin:batches_batchtask_changelist"), {"action": name, "_selected_action": [batch.pk]})


def _cli(client, batch, action):
    command = "retry_failed" if action == "retry" else f"{action}_batch"
    call_command(command, str(batch.pk))


FACES = {"page": _page, "admin": _admin, "cli": _cli}


@pytest.fixture
def staff(login, admin_client):
    return {"page": lambda: login(*PAGE_PERMS), "admin": lambda: admin_client, "cli": lambda: None}


@pytest.mark.parametrize("action", list(STATES))
@pytest.mark.parametrize("face", list(FACES))
def test_each_batch_action_from_each_face_leaves_one_entry(make_batch, staff, face, action):
    status, failed = STATES[action]
    batch = make_batch(rows=3, status=status)
    Execution.objects.filter(batch=batch, index__lt=failed).update(status=ExecutionStatus.FAILED)
    if status == BatchStatus.FINISHED:
        Execution.objects.filter(batch=batch, index__gte=failed).update(status=ExecutionStatus.SUCCEEDED)
    client = staff[face]()

    FACES[face](client, batch, action)

    [entry] = AuditEntry.objects.filter(batch=batch)
    assert (entry.action, entry.face) == (action, face)
    expected = {"page": entry.user and entry.user.username, "admin": "admin", "cli": OS_USER}[face]
    assert entry.actor == expected and (entry.user is None) == (face == "cli")
    assert entry.workflow_id == batch.workflow_id
    if action == "cancel":
        assert entry.rows == 3
    if action == "retry":
        assert entry.rows == 2
        assert entry.detail["executions"] == sorted(
            Execution.objects.filter(batch=batch, index__lt=2).values_list("pk", flat=True)
        )


def test_a_refused_action_leaves_no_entry(make_batch):
    batch = make_batch(status=BatchStatus.FINISHED)

    with pytest.raises(transitions.TransitionError):
        lifecycle.pause_batch(batch.pk)

    assert not AuditEntry.objects.exists()


def test_editing_inputs_on_the_page_records_the_row(make_batch, login):
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    row = batch.executions.get(index=1)
    Execution.objects.filter(pk=row.pk).update(status=ExecutionStatus.FAILED)
    client = login(*PAGE_PERMS)

    client.post(reverse("batches:execution_retry", args=[row.pk]), {"inputs": json.dumps({"text": "fixed"})})

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.rows, entry.detail["executions"], entry.face) == ("edit_inputs", 1, [row.pk], "page")


def test_the_admin_s_retry_selected_records_one_entry_per_batch(make_batch, admin_client):
    first, second = make_batch(status=BatchStatus.FINISHED), make_batch(status=BatchStatus.FINISHED)
    Execution.objects.update(status=ExecutionStatus.FAILED)
    picked = list(Execution.objects.filter(index=0).values_list("pk", flat=True))

    admin_client.post(
        reverse("admin:batches_execution_changelist"), {"action": "retry_selected", "_selected_action": picked}
    )

    entries = AuditEntry.objects.order_by("batch_id")
    assert [(e.batch_id, e.rows, e.face) for e in entries] == [(first.pk, 1, "admin"), (second.pk, 1, "admin")]


def test_changing_concurrency_on_the_page_is_recorded(make_batch, login):
    batch = make_batch(status=BatchStatus.RUNNING)

    login(*PAGE_PERMS).post(reverse("batches:batch_concurrency", args=[batch.pk]), {"concurrency": 7})

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.detail, entry.face) == ("settings", {"concurrency": 7}, "page")


def test_a_key_change_from_the_command_line_is_recorded_without_the_key(make_workflow):
    workflow = make_workflow(name="wf")

    call_command("add_workflow", "wf", "--api-key=app-new-secret", "--concurrency=3")

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.workflow_id, entry.face) == ("workflow_key", workflow.pk, "cli")
    assert entry.detail["changed"] == ["api_key", "concurrency"]
    assert "app-new-secret" not in json.dumps(entry.detail) + entry.reason


def test_a_workflow_saved_on_the_page_is_recorded(make_workflow, login):
    workflow = make_workflow(name="wf")
    client = login("batches.change_workflow", "batches.view_workflow")
    data = {
        "name": "wf",
        "mode": "workflow",
        "base_url": workflow.base_url,
        "api_key": "",
        "response_mode": "streaming",
        "timeout": 60,
        "concurrency": 4,
        "retry_workflow_failed": "on",
    }

    client.post(reverse("batches:workflow_edit", args=[workflow.pk]), data)

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.face) == ("workflow", "page")
    assert "concurrency" in entry.detail["changed"] and "api_key" not in entry.detail["changed"]
    assert Workflow.objects.get(pk=workflow.pk).concurrency == 4


def test_the_system_s_own_transitions_are_in_the_history(make_batch, login):
    batch = make_batch(status=BatchStatus.RUNNING)
    transitions.pause(batch.pk, reason="auth: 401 invalid key")
    lifecycle.resume_batch(batch.pk)
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.SUCCEEDED)
    transitions.finish_done([batch.pk])
    Execution.objects.filter(batch=batch, index=0).update(status=ExecutionStatus.PENDING)
    recovery.sweep(now=timezone.now() + timedelta(seconds=1))

    page = login(*PAGE_PERMS).get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor"))
    assert actions == [
        ("paused_by_system", "system"),
        ("resume", "system"),
        ("finished", "system"),
        ("reopened", "system"),
    ]
    assert "auth: 401 invalid key" in page and "Reopened by the sweep" in page


def test_running_a_batch_on_its_workflow_s_new_dify_is_recorded(make_batch, login):
    batch = make_batch(status=BatchStatus.PAUSED)
    Workflow.objects.filter(pk=batch.workflow_id).update(base_url="http://127.0.0.1:10/v1")

    login(*PAGE_PERMS).post(reverse("batches:batch_action", args=[batch.pk, "repoint"]))

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.face, entry.detail) == ("settings", "page", {"moved_to": "http://127.0.0.1:10/v1"})
