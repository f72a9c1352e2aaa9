"""The New batch preview's column mapping (issue 25, item 6) and its kept check (issue 27, M1)."""

from __future__ import annotations

import pytest

from batches.dify.types import InputVariable
from batches.models import BatchTask, Execution, Workflow
from batches.services import file_imports
from tests.views.helpers import csv_upload, upload, url

APP = [InputVariable("text", "Source text", required=True), InputVariable("lang", "Language")]


@pytest.fixture
def opened(monkeypatch):
    """How many times an upload is opened and read."""
    calls = []
    real = file_imports.opened_table

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(file_imports, "opened_table", counted)
    return calls


def test_reloading_the_preview_reads_the_upload_once(controller, make_workflow, variables, opened):
    variables(APP)
    upload(controller, make_workflow(), csv_upload("Source text\nhello\n"))

    first = controller.get(url("batch_preview"))
    again = controller.get(url("batch_preview"))

    assert first.status_code == again.status_code == 200
    assert again.context["total"] == 1
    assert len(opened) == 1


def test_the_preview_shows_the_files_own_header_and_the_guess(controller, make_workflow, variables):
    variables(APP)

    response = upload(controller, make_workflow(), csv_upload("Source text,Language,notes\nhello,en,x\n"), follow=True)

    html = response.content.decode()
    assert response.context["heads"] == [("Source text", "text"), ("Language", "lang"), ("notes", "")]
    assert "<th>Source text<br>" in html and 'name="column_2"' in html


def test_an_applied_mapping_is_checked_imported_and_remembered_for_the_workflow(controller, make_workflow, variables):
    variables(APP)
    workflow = make_workflow()
    upload(controller, workflow, csv_upload("body,id\nhello,1\n"))

    applied = controller.post(url("batch_map"), {"column_0": "text", "column_1": ""}, follow=True)
    controller.post(url("batch_import"), {"concurrency": 1, "max_retries": 2, "column_0": "text", "column_1": ""})
    upload(controller, workflow, csv_upload("body,id,more\nagain,2,x\n"))
    next_time = controller.get(url("batch_preview"))

    assert applied.context["heads"] == [("body", "text"), ("id", "")] and applied.context["total"] == 1
    row = Execution.objects.get()
    assert (row.inputs, row.extra, row.batch.extra_columns) == ({"text": "hello"}, {"id": "1"}, ["id"])
    assert Workflow.objects.get(pk=workflow.pk).column_map == {"body": "text", "id": ""}
    assert next_time.context["heads"] == [("body", "text"), ("id", ""), ("more", "")]


def test_a_chat_apps_query_can_be_mapped_from_any_column(controller, make_workflow, variables):
    variables(APP)
    workflow = make_workflow(mode="chat")
    preview = upload(controller, workflow, csv_upload("question,Source text\nhi?,hello\n"), follow=True)

    controller.post(url("batch_import"), {"concurrency": 1, "max_retries": 2, "column_0": "query", "column_1": "text"})

    assert "query (the user&#x27;s message)" in preview.content.decode()
    assert Execution.objects.get().inputs == {"query": "hi?", "text": "hello"}


def test_a_choice_that_was_not_offered_is_refused(controller, make_workflow, variables):
    variables(APP)
    upload(controller, make_workflow(), csv_upload("body\nhello\n"))

    controller.post(url("batch_map"), {"column_0": "password"})
    response = controller.get(url("batch_preview"))

    assert response.context["heads"] == [("body", "")]
    assert BatchTask.objects.count() == 0
