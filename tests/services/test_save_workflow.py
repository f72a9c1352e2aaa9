"""Every face that edits a workflow (the workflows page, the admin, `add_workflow`) writes it through
`services.workflows.save_workflow`: the same audit entry, the same key rule, the app's variables read after."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from batches.dify import pages
from batches.dify.types import InputVariable
from batches.models import AuditEntry, Workflow

URL = "http://127.0.0.1:9/v1"
MOVED = "http://127.0.0.1:8/v1"
PERMS = ("batches.add_workflow", "batches.change_workflow", "batches.view_workflow")


@pytest.fixture(autouse=True)
def app_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "fetch_parameters", lambda app, timeout=5: [InputVariable("text", "Text")])


def form_data(name: str, **changes: Any) -> dict[str, Any]:
    data = {
        "name": name,
        "mode": "workflow",
        "base_url": URL,
        "api_key": "",
        "response_mode": "streaming",
        "timeout": 600,
        "rpm_limit": "",
        "concurrency": 10,
        "retry_workflow_failed": "on",
    }
    return {**data, **changes}


def on_the_page(client: Client, workflow: Workflow | None, **changes: Any) -> None:
    target = reverse("batches:workflow_edit", args=[workflow.pk]) if workflow else reverse("batches:workflow_add")
    client.post(target, form_data(workflow.name if workflow else "new", **changes))


def in_the_admin(client: Client, workflow: Workflow | None, **changes: Any) -> None:
    change, add = "admin:batches_workflow_change", "admin:batches_workflow_add"
    target = reverse(change, args=[workflow.pk]) if workflow else reverse(add)
    client.post(target, form_data(workflow.name if workflow else "new", **changes))


def on_the_command_line(client: Client, workflow: Workflow | None, **changes: Any) -> None:
    options = [f"--{key.replace('_', '-')}={value}" for key, value in changes.items()]
    base_url = [] if workflow else [f"--base-url={URL}"]
    with contextlib.suppress(CommandError):  # refused: the tests look at what was written
        call_command("add_workflow", workflow.name if workflow else "new", *base_url, *options)


FACES: dict[str, Callable[..., None]] = {"page": on_the_page, "admin": in_the_admin, "cli": on_the_command_line}


@pytest.fixture
def client(login: Any) -> Client:
    return login(*PERMS)


@pytest.mark.parametrize("face", FACES)
def test_a_change_from_any_face_is_recorded_and_the_apps_variables_read(
    face, client, make_workflow, django_capture_on_commit_callbacks
):
    workflow = make_workflow(base_url=URL)

    with django_capture_on_commit_callbacks(execute=True):
        FACES[face](client, workflow, concurrency=4)

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.face, entry.workflow_id) == ("workflow", face, workflow.pk)
    assert entry.detail == {"changed": ["concurrency"], "created": False}
    workflow.refresh_from_db()
    assert (workflow.concurrency, workflow.input_variables[0]["variable"]) == (4, "text")


@pytest.mark.parametrize("face", FACES)
def test_a_workflow_added_from_any_face_is_recorded_with_its_key(face, client, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        FACES[face](client, None, api_key="app-new-key")

    workflow = Workflow.objects.get()
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.face, entry.workflow_id) == ("workflow_key", face, workflow.pk)
    assert entry.detail["created"] is True and "api_key" in entry.detail["changed"]
    assert (workflow.api_key, workflow.input_variables[0]["variable"]) == ("app-new-key", "text")


@pytest.mark.parametrize("face", FACES)
def test_no_face_moves_a_workflow_without_its_key(face, client, make_workflow, django_capture_on_commit_callbacks):
    workflow = make_workflow(base_url=URL, api_key="app-old-key")

    with django_capture_on_commit_callbacks(execute=True):
        FACES[face](client, workflow, base_url=MOVED)

    workflow.refresh_from_db()
    assert (workflow.base_url, workflow.api_key) == (URL, "app-old-key")
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("face", ["page", "admin"])
def test_a_form_clears_a_limit_left_blank(face, client, make_workflow):
    workflow = make_workflow(base_url=URL, rpm_limit=60)

    FACES[face](client, workflow, rpm_limit="")

    workflow.refresh_from_db()
    assert workflow.rpm_limit is None
    assert AuditEntry.objects.get().detail["changed"] == ["rpm_limit"]
