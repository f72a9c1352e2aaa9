"""The edit-and-retry forms check JSON only: the types the app declares are the retry's to check (it asks the app),
and its refusal still shows on the `inputs` field of the page and of the admin, in the same words."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from batches.choices import ExecutionStatus
from batches.dify import pages
from batches.dify.types import InputVariable
from batches.forms import executions
from batches.forms.executions import ExecutionRetryAdminForm, InputsForm
from batches.imports.inputs import InputError, convert_row
from batches.models import Execution

AGE = InputVariable("age", "Age", type="number")
RETRY = "batches.retry_execution"


@pytest.fixture
def failed_row(make_batch: Any) -> Execution:
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.FAILED)
    execution.refresh_from_db()
    return execution


@pytest.fixture
def unreachable_dify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any question to the app (GET /parameters) fails the test."""

    def asked(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a form's validation asked the app")

    monkeypatch.setattr(pages, "fetch_parameters", asked)


@pytest.fixture
def app_declares_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "fetch_parameters", lambda app, timeout=5: [AGE])


def refusal(edited: dict[str, Any]) -> str:
    """The app's rules' own words for these inputs."""
    with pytest.raises(InputError) as refused:
        convert_row(edited, [AGE])
    return str(refused.value)


def test_the_pages_form_validates_without_asking_the_app(unreachable_dify, failed_row):
    form = InputsForm({"inputs": '{"age": "six"}'})

    assert form.is_valid()
    assert form.cleaned_data["inputs"] == {"age": "six"}


def test_the_admins_form_validates_without_asking_the_app(unreachable_dify, failed_row):
    form = ExecutionRetryAdminForm({"inputs": '{"age": "six"}'}, instance=failed_row)

    assert form.is_valid()
    assert form.cleaned_data["inputs"] == {"age": "six"}


def test_the_rows_forms_call_no_service():
    tree = ast.parse(Path(executions.__file__).read_text(encoding="utf-8"))

    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]

    assert not [name for name in imported if name.startswith("batches.services")]


def test_the_page_shows_the_apps_refusal_on_the_inputs_field(app_declares_a_number, failed_row, login):
    client = login(RETRY)

    response = client.post(reverse("batches:execution_retry", args=[failed_row.pk]), {"inputs": '{"age": "six"}'})

    assert response.status_code == 400
    assert response.context["form"].errors["inputs"] == [refusal({"age": "six"})]
    failed_row.refresh_from_db()
    assert (failed_row.status, failed_row.inputs) == (ExecutionStatus.FAILED, {"text": "row 0"})


def test_the_page_retries_with_the_inputs_in_the_apps_types(app_declares_a_number, failed_row, login):
    client = login(RETRY)

    client.post(reverse("batches:execution_retry", args=[failed_row.pk]), {"inputs": '{"age": "6"}'})

    failed_row.refresh_from_db()
    assert (failed_row.status, failed_row.inputs) == (ExecutionStatus.PENDING, {"age": 6})


def admin_post(client: Any, execution: Execution, inputs: dict[str, Any]) -> Any:
    management = {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0, "MIN_NUM_FORMS": 0, "MAX_NUM_FORMS": 1000}
    data = {"inputs": json.dumps(inputs), "_save": "Save and retry"}
    data.update({f"attempts-{key}": value for key, value in management.items()})
    return client.post(reverse("admin:batches_execution_change", args=[execution.pk]), data)


def test_the_admin_shows_the_apps_refusal_on_the_inputs_field(app_declares_a_number, failed_row, login):
    client = login("batches.view_execution", RETRY)

    response = admin_post(client, failed_row, {"age": "six"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["inputs"] == [refusal({"age": "six"})]
    assert not list(response.context["messages"])
    assert not LogEntry.objects.exists()  # nothing was changed, so the history says nothing
    failed_row.refresh_from_db()
    assert (failed_row.status, failed_row.inputs) == (ExecutionStatus.FAILED, {"text": "row 0"})


def test_the_admin_retries_with_the_inputs_in_the_apps_types(app_declares_a_number, failed_row, login):
    client = login("batches.view_execution", RETRY)

    response = admin_post(client, failed_row, {"age": "6"})

    assert response.status_code == 302
    failed_row.refresh_from_db()
    assert (failed_row.status, failed_row.inputs) == (ExecutionStatus.PENDING, {"age": 6})
