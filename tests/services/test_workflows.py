"""A stored API key is only sent where it was entered for (batches.services.workflows): a new base URL needs the key
again, no GET sends it, and a batch made for another base URL never sends the current key there.

Local servers record the Authorization header of every request they get: the key must never arrive where it does
not belong. And every face that edits a workflow (the page, the admin, `add_workflow`) writes it through
`save_workflow`: the same audit entry, the same key rule, the app's variables read after.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify import pages
from batches.dify.types import InputVariable
from batches.imports.inputs import InputError
from batches.models import AuditEntry, Execution, Workflow
from batches.runner.worker import Runner
from batches.services import lifecycle, workflows
from batches.services.workflows import cached_input_variables, refresh_input_variables
from fakedify.harness import FakeDifyProcess, running_fake_dify
from tests.keyserver import KeyServer, key_server

SECRET = "app-Zq7-the-real-key-4c1d9e"
FORM = [{"text-input": {"variable": "text", "label": "Source text", "required": True}}]


class Recorder:
    """An HTTP server that answers every request like Dify's /parameters and keeps each Authorization header."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                recorder.authorizations.append(self.headers.get("Authorization", ""))
                body = json.dumps({"user_input_form": FORM}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--variables", "text:Source text:required,lang:Language") as server:
        yield server


def admin_data(workflow: Workflow, **fields: Any) -> dict[str, Any]:
    data = {
        "name": workflow.name,
        "mode": workflow.mode,
        "base_url": workflow.base_url,
        "api_key": "",
        "response_mode": workflow.response_mode,
        "timeout": "30",
        "rpm_limit": "",
        "concurrency": "10",
        "retry_workflow_failed": "on",
    }
    return {**data, **fields}


def test_the_admin_refuses_a_new_base_url_without_the_key(
    admin_client: Client, make_workflow: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    workflow = make_workflow(api_key=SECRET, base_url="http://127.0.0.1:9/v1")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:batches_workflow_change", args=[workflow.pk]), admin_data(workflow, base_url=recorder.url)
        )

    assert response.status_code == 200
    assert "enter the API key again" in str(response.context["adminform"].form.errors["api_key"])
    assert Workflow.objects.get(pk=workflow.pk).base_url == "http://127.0.0.1:9/v1"
    assert recorder.authorizations == []


def test_the_admin_takes_a_new_base_url_with_the_key_and_reads_the_variables(
    admin_client: Client, make_workflow: Any, recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    workflow = make_workflow(api_key=SECRET)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:batches_workflow_change", args=[workflow.pk]),
            admin_data(workflow, base_url=recorder.url, api_key="app-entered-for-this-url"),
        )

    assert response.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.base_url, workflow.api_key) == (recorder.url, "app-entered-for-this-url")
    assert recorder.authorizations == ["Bearer app-entered-for-this-url"]
    assert [v.variable for v in cached_input_variables(workflow) or []] == ["text"]


def test_the_admin_keeps_the_key_while_the_base_url_stays(admin_client: Client, make_workflow: Any) -> None:
    workflow = make_workflow(api_key=SECRET, base_url="http://127.0.0.1:9/v1")

    response = admin_client.post(
        reverse("admin:batches_workflow_change", args=[workflow.pk]),
        admin_data(workflow, base_url="http://127.0.0.1:9/v1/", concurrency="7"),
    )

    assert response.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.api_key, workflow.concurrency) == (SECRET, 7)


def test_add_workflow_refuses_a_new_base_url_without_the_key(make_workflow: Any, recorder: Recorder) -> None:
    make_workflow(name="summarise", api_key=SECRET)

    with pytest.raises(CommandError, match="api_key: The base URL changed: enter the API key again"):
        call_command("add_workflow", "summarise", "--base-url", recorder.url, stdout=io.StringIO())

    assert Workflow.objects.get(name="summarise").api_key == SECRET
    assert recorder.authorizations == []


def test_add_workflow_reads_and_keeps_the_apps_variables(db: None, fake: FakeDifyProcess) -> None:
    out = io.StringIO()

    call_command("add_workflow", "summarise", "--base-url", fake.url, "--api-key", SECRET, stdout=out)

    workflow = Workflow.objects.get(name="summarise")
    assert out.getvalue() == "summarise\n"
    assert [(v.variable, v.label) for v in cached_input_variables(workflow) or []] == [
        ("text", "Source text"),
        ("lang", "Language"),
    ]


def test_the_csv_template_calls_no_upstream(admin_client: Client, make_workflow: Any, recorder: Recorder) -> None:
    workflow = make_workflow(api_key=SECRET, base_url=recorder.url)
    refresh_input_variables(workflow.pk)
    recorder.authorizations.clear()
    Workflow.objects.filter(pk=workflow.pk).update(base_url=recorder.url + "/elsewhere")

    response = admin_client.get(reverse("batches:workflow_template", args=[workflow.pk]))

    assert response.status_code == 200
    assert response.content == b"\xef\xbb\xbfSource text\r\n"
    assert recorder.authorizations == []


def test_the_csv_template_without_known_variables_says_so(admin_client: Client, make_workflow: Any) -> None:
    workflow = make_workflow()

    response = admin_client.get(reverse("batches:workflow_template", args=[workflow.pk]), follow=True)

    assert "are not known yet" in response.content.decode()


# --------------------------------------------------------------------------- a batch made for another base URL

OWN_KEY, REAL_KEY = "app-attackers-own-key", "app-the-real-key-0001"


@pytest.fixture
def attacker() -> Iterator[KeyServer]:
    with key_server() as server:
        yield server


@pytest.fixture
def real() -> Iterator[KeyServer]:
    with key_server() as server:
        yield server


@pytest.fixture
def moved_batch(make_workflow, make_batch, attacker, real):
    """A batch imported while the workflow pointed at the attacker's server; then the real URL and key came back."""
    workflow = make_workflow(base_url=attacker.url, api_key=OWN_KEY, response_mode="blocking")
    batch = make_batch(rows=3, workflow=workflow, status=BatchStatus.PENDING)
    workflows.save_workflow(workflow.name, base_url=real.url, api_key=REAL_KEY)
    return batch


def test_starting_a_batch_made_for_another_url_never_sends_the_current_key_there(moved_batch, attacker, real):
    # One row was interrupted mid-call: a take-over would first look its run up (GET /workflows/run/{id}).
    Execution.objects.filter(batch=moved_batch, index=0).update(
        status=ExecutionStatus.RUNNING, workflow_run_id="run-1", lease_owner="gone", lease_expires_at=timezone.now()
    )
    lifecycle.start_batch(moved_batch.pk)

    Runner().run(seconds=10)

    assert REAL_KEY not in attacker.bearers()
    assert real.seen == []  # nor does it silently run on the new Dify: staff choose
    moved_batch.refresh_from_db()
    assert moved_batch.status == BatchStatus.PAUSED
    assert "moved" in moved_batch.status_reason
    assert not Execution.objects.filter(batch=moved_batch, status=ExecutionStatus.SUCCEEDED).exists()


def test_edit_and_retry_of_a_moved_batch_asks_no_server_with_the_current_key(moved_batch, attacker, real):
    row = Execution.objects.filter(batch=moved_batch).first()

    with pytest.raises(InputError, match="moved"):
        lifecycle.typed_inputs(row, edited={"text": "edited"})

    assert attacker.seen == real.seen == []


def test_a_batch_pointed_again_runs_on_the_new_dify_with_the_new_key_only(moved_batch, attacker, real):
    lifecycle.start_batch(moved_batch.pk)
    Runner().run(seconds=10)

    workflows.repoint_batch(moved_batch.pk)
    lifecycle.resume_batch(moved_batch.pk)
    Runner().run(seconds=10)

    moved_batch.refresh_from_db()
    assert moved_batch.status == BatchStatus.FINISHED
    assert moved_batch.config["base_url"] == real.url
    assert real.bearers() == {REAL_KEY}
    assert [path for _method, path, _auth in real.seen].count("/v1/workflows/run") == 3
    assert REAL_KEY not in attacker.bearers()


def test_a_corrected_key_for_the_same_url_takes_effect(make_workflow, make_batch, real):
    workflow = make_workflow(base_url=real.url, api_key="app-mistyped-key", response_mode="blocking")
    batch = make_batch(rows=2, workflow=workflow, status=BatchStatus.RUNNING)
    workflows.save_workflow(workflow.name, api_key=REAL_KEY)

    Runner().run(seconds=10)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED
    assert real.bearers() == {REAL_KEY}


def test_a_base_url_written_differently_is_the_same_place(make_workflow, make_batch, real):
    workflow = make_workflow(base_url=real.url, api_key=REAL_KEY, response_mode="blocking")
    batch = make_batch(rows=1, workflow=workflow, status=BatchStatus.RUNNING)
    workflows.save_workflow(workflow.name, base_url=real.url + "/")

    Runner().run(seconds=10)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED


# Every face that edits a workflow (the workflows page, the admin, `add_workflow`) writes it through
# `save_workflow`: the same audit entry, the same key rule, the app's variables read after.
SAVE_URL = "http://127.0.0.1:9/v1"
MOVED = "http://127.0.0.1:8/v1"
PERMS = ("batches.add_workflow", "batches.change_workflow", "batches.view_workflow")


@pytest.fixture
def app_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "fetch_parameters", lambda app, timeout=5: [InputVariable("text", "Text")])


def form_data(name: str, **changes: Any) -> dict[str, Any]:
    data = {
        "name": name,
        "mode": "workflow",
        "base_url": SAVE_URL,
        "api_key": "",
        "response_mode": "streaming",
        "timeout": 600,
        "rpm_limit": "",
        "concurrency": 10,
        "retry_workflow_failed": "on",
    }
    return {**data, **changes}


def on_the_page(editor: Client, workflow: Workflow | None, **changes: Any) -> None:
    target = reverse("batches:workflow_edit", args=[workflow.pk]) if workflow else reverse("batches:workflow_add")
    editor.post(target, form_data(workflow.name if workflow else "new", **changes))


def in_the_admin(editor: Client, workflow: Workflow | None, **changes: Any) -> None:
    change, add = "admin:batches_workflow_change", "admin:batches_workflow_add"
    target = reverse(change, args=[workflow.pk]) if workflow else reverse(add)
    editor.post(target, form_data(workflow.name if workflow else "new", **changes))


def on_the_command_line(editor: Client, workflow: Workflow | None, **changes: Any) -> None:
    options = [f"--{key.replace('_', '-')}={value}" for key, value in changes.items()]
    base_url = [] if workflow else [f"--base-url={SAVE_URL}"]
    with contextlib.suppress(CommandError):  # refused: the tests look at what was written
        call_command("add_workflow", workflow.name if workflow else "new", *base_url, *options)


FACES: dict[str, Callable[..., None]] = {"page": on_the_page, "admin": in_the_admin, "cli": on_the_command_line}


@pytest.fixture
def editor(login: Any, app_answers: None) -> Client:
    """Staff who may add and change workflows; the app answers with one variable."""
    return login(*PERMS)


@pytest.mark.parametrize("face", FACES)
def test_a_change_from_any_face_is_recorded_and_the_apps_variables_read(
    face, editor, make_workflow, django_capture_on_commit_callbacks
):
    workflow = make_workflow(base_url=SAVE_URL)

    with django_capture_on_commit_callbacks(execute=True):
        FACES[face](editor, workflow, concurrency=4)

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.face, entry.workflow_id) == ("workflow", face, workflow.pk)
    assert entry.detail == {"changed": ["concurrency"], "created": False}
    workflow.refresh_from_db()
    assert (workflow.concurrency, workflow.input_variables[0]["variable"]) == (4, "text")


@pytest.mark.parametrize("face", FACES)
def test_a_workflow_added_from_any_face_is_recorded_with_its_key(face, editor, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        FACES[face](editor, None, api_key="app-new-key")

    workflow = Workflow.objects.get()
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.face, entry.workflow_id) == ("workflow_key", face, workflow.pk)
    assert entry.detail["created"] is True and "api_key" in entry.detail["changed"]
    assert (workflow.api_key, workflow.input_variables[0]["variable"]) == ("app-new-key", "text")


@pytest.mark.parametrize("face", FACES)
def test_no_face_moves_a_workflow_without_its_key(face, editor, make_workflow, django_capture_on_commit_callbacks):
    workflow = make_workflow(base_url=SAVE_URL, api_key="app-old-key")

    with django_capture_on_commit_callbacks(execute=True):
        FACES[face](editor, workflow, base_url=MOVED)

    workflow.refresh_from_db()
    assert (workflow.base_url, workflow.api_key) == (SAVE_URL, "app-old-key")
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("face", ["page", "admin"])
def test_a_form_clears_a_limit_left_blank(face, editor, make_workflow):
    workflow = make_workflow(base_url=SAVE_URL, rpm_limit=60)

    FACES[face](editor, workflow, rpm_limit="")

    workflow.refresh_from_db()
    assert workflow.rpm_limit is None
    assert AuditEntry.objects.get().detail["changed"] == ["rpm_limit"]
