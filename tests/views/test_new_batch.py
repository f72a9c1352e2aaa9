"""A new batch (views.new_batch, imports.uploads): upload in every format, preview with its column mapping, a ZIP and
its files, import, and a workflow's CSV template."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from batches.dify.types import InputVariable
from batches.imports import uploads as upload_storage
from batches.models import BatchFile, BatchTask, Execution, Workflow
from batches.services import file_imports
from tests.views.helpers import (
    ADD,
    BOM,
    CONTROL,
    RETRY,
    S,
    csv_upload,
    messages_of,
    preview_of,
    upload,
    url,
    zip_upload,
)
from tests.xlsxfiles import xlsx_bytes

CSV_ROWS = "\n".join(["text;lang"] + [f"line {i};zh" for i in range(25)]) + "\n"

UPLOADS_DIR = upload_storage.uploads_dir  # before the autouse fixture replaces it


def test_new_batch_page_lists_workflows_with_template_links(controller, make_workflow):
    workflow = make_workflow(name="summarise")

    html = controller.get(url("batch_new")).content.decode()

    assert "summarise" in html
    assert url("workflow_template", workflow.pk) in html
    assert 'enctype="multipart/form-data"' in html


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
    assert '<td class="num muted">1</td><td>line 0</td>' in preview.content.decode()  # rows count from 1
    assert len([path for path in uploads.iterdir() if path.suffix != ".json"]) == 1

    data = {"name": "Orders May", "concurrency": 3, "max_retries": 1, "start": "on"}
    response = controller.post(url("batch_import"), data, follow=True)

    batch = BatchTask.objects.get()
    assert response.redirect_chain == [(url("batch_detail", batch.pk), 302)]
    assert messages_of(response) == [("success", "Imported 25 rows.")]
    assert (batch.name, batch.source_filename, batch.total, batch.status) == ("Orders May", "orders.csv", 25, S.RUNNING)
    assert (batch.concurrency, batch.max_retries, batch.created_by_id) == (3, 1, response.context["user"].pk)
    assert batch.executions.get(index=24).inputs == {"text": "line 24", "lang": "zh"}
    assert list(uploads.iterdir()) == []
    assert upload_storage.SESSION_KEY not in controller.session


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
    assert [(column, variable.variable) for column, variable, _ in mapping] == [("Source text", "text")]
    assert [variable.variable for variable in response.context["unused"]] == ["lang"]
    assert "Source text" in response.content.decode()


def test_a_column_the_app_does_not_know_is_ignored_at_first_and_kept_with_its_row(controller, make_workflow, variables):
    variables([InputVariable("text", "Text", required=True), InputVariable("lang", "lang")])
    workflow = make_workflow()

    preview = upload(controller, workflow, csv_upload("Text,extra\nhello,1\n"), follow=True)
    controller.post(url("batch_import"), {"concurrency": 1, "max_retries": 2, "column_0": "text", "column_1": ""})

    assert preview.redirect_chain[-1] == (url("batch_preview"), 302)
    assert [(column, field.value()) for column, _, field in preview.context["mapping"]] == [
        ("Text", "text"),
        ("extra", ""),
    ]
    row = Execution.objects.get()
    assert (row.inputs, row.extra) == ({"text": "hello"}, {"extra": "1"})


def test_a_mapping_missing_a_required_variable_is_shown_and_cannot_be_imported(controller, make_workflow, variables):
    variables([InputVariable("text", "Text", required=True), InputVariable("lang", "lang")])
    workflow = make_workflow()

    preview = upload(controller, workflow, csv_upload("lang\nzh\n"), follow=True)
    refused = controller.post(url("batch_import"), {"concurrency": 1, "max_retries": 2, "column_0": "lang"})

    html = preview.content.decode()
    assert preview.context["map_error"] == "missing required column 'text' (label 'Text')"
    assert 'id="map-error"' in html and ">Import</button>" not in html
    assert refused.status_code == 200 and refused.context["map_error"]
    assert BatchTask.objects.count() == 0


BAD_FILES = [
    # (file name, content, what the page says)
    ("rows.pdf", b"%PDF-1.4", "Unsupported file type: use CSV, XLSX, JSONL or ZIP."),
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
    assert len([path for path in uploads.iterdir() if path.suffix != ".json"]) == 1  # still there for a second try


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
    day_ago = time.time() - upload_storage.MAX_AGE - 60
    os.utime(stale, (day_ago, day_ago))

    upload(controller, make_workflow(), csv_upload("text\nnew\n"))

    assert not stale.exists()


def test_uploads_wait_in_a_private_folder_of_the_temporary_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(upload_storage.tempfile, "gettempdir", lambda: str(tmp_path))

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


def test_adding_a_batch_without_the_control_permission_never_starts_it(login, make_workflow):
    """Starting sends paid calls: "Can add batch" alone imports, an operator with the control permission starts."""
    adder = login(ADD)
    workflow = make_workflow()
    preview = upload(adder, workflow, csv_upload("text\nhello\n"), follow=True)

    adder.post(url("batch_import"), {"name": "", "concurrency": 2, "max_retries": 2, "start": "on"})

    assert 'name="start"' not in preview.content.decode()
    assert BatchTask.objects.get().status == S.PENDING


def test_preview_shows_the_total_number_of_rows(login: Any, make_workflow: Any) -> None:
    client = login(ADD)
    content = "text\n" + "".join(f"row {i}\n" for i in range(57))
    client.post(
        reverse("batches:batch_upload"),
        {"workflow": make_workflow().pk, "file": SimpleUploadedFile("rows.csv", content.encode())},
    )

    html = client.get(reverse("batches:batch_preview")).content.decode()

    assert '<dd id="total-rows">57</dd>' in html


@pytest.mark.parametrize(("perms", "offered"), [((ADD, "batches.add_workflow"), "Add a workflow."), ((ADD,), "Ask a")])
def test_new_batch_without_workflows_points_to_the_sites_own_workflows_page(
    login: Any, db: None, perms, offered
) -> None:
    html = login(*perms).get(reverse("batches:batch_new")).content.decode()

    assert offered in html and "/admin/" not in html.split("There is no workflow yet.")[1].split("</p>")[0]


def test_the_csv_template_neutralises_formula_labels_but_not_numbers(admin_client: Client, make_workflow: Any) -> None:
    labels = ["=cmd|' /C calc'!A0", "@SUM(A1)", "-3.5", "+8613800000000", "plain"]
    variables = [dataclasses.asdict(InputVariable(f"v{i}", label)) for i, label in enumerate(labels)]
    workflow = make_workflow(input_variables=variables)

    response = admin_client.get(reverse("batches:workflow_template", args=[workflow.pk]))

    assert response.content.decode("utf-8-sig") == "'=cmd|' /C calc'!A0,'@SUM(A1),-3.5,+8613800000000,plain\r\n"


FILES = {
    "rows.csv": "text,lang\nhello,en\n你好,zh\n".encode(),
    "rows.xlsx": xlsx_bytes([["text", "lang"], ["hello", "en"], ["你好", "zh"]]),
    "rows.jsonl": "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in [
        {"text": "hello", "lang": "en"}, {"text": "你好", "lang": "zh"}]).encode(),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_format_uploads_previews_and_imports(name: str, login: Any, make_workflow: Any) -> None:
    client = login("batches.add_batchtask")
    workflow = make_workflow()
    file = SimpleUploadedFile(name, FILES[name])

    preview = client.post(reverse("batches:batch_upload"), {"workflow": workflow.pk, "file": file}, follow=True)
    imported = client.post(
        reverse("batches:batch_import"), {"name": name, "concurrency": 1, "max_retries": 0}, follow=True
    )

    assert preview.context["rows"] == [["hello", "en"], ["你好", "zh"]], preview.content.decode()[:2000]
    batch = BatchTask.objects.get(name=name)
    assert imported.redirect_chain[-1][0] == reverse("batches:batch_detail", args=[batch.pk])
    assert [e.inputs for e in batch.executions.order_by("index")] == [
        {"text": "hello", "lang": "en"},
        {"text": "你好", "lang": "zh"},
    ]


@pytest.mark.usefixtures("file_app")
def test_a_zip_is_previewed_with_its_files_then_imported(login, make_workflow):
    client, workflow = login(ADD, CONTROL, RETRY), make_workflow()
    table = "doc,text\ndocs/a.pdf,one\ndocs/b.pdf,two\ndocs/a.pdf,three\n"

    preview = preview_of(client, workflow, zip_upload(table, {"docs/a.pdf": b"A" * 2048, "docs/b.pdf": b"B"}))

    page = preview.content.decode()
    assert preview.context["total"] == 3
    assert preview.context["rows"][0] == ["docs/a.pdf", "one"]
    assert "2 named by the table, of 2 in the ZIP" in page
    assert "(document)" in page
    response = client.post(reverse("batches:batch_import"), {"concurrency": 2, "max_retries": 2}, follow=True)
    batch = BatchTask.objects.get()
    assert (batch.source_filename, batch.total, BatchFile.objects.filter(batch=batch).count()) == (
        "contracts.zip",
        3,
        2,
    )
    assert response.redirect_chain == [(reverse("batches:batch_detail", args=[batch.pk]), 302)]


@pytest.mark.usefixtures("file_app")
def test_the_preview_lists_the_files_the_zip_lacks_and_offers_no_import(login, make_workflow):
    client, workflow = login(ADD), make_workflow()
    table = "doc,text\ndocs/a.pdf,one\ndocs/gone.pdf,two\nother/gone2.pdf,x\n"

    preview = preview_of(client, workflow, zip_upload(table, {"docs/a.pdf": b"A"}))

    page = preview.content.decode()
    assert preview.context["archive"]["missing"] == ["docs/gone.pdf", "other/gone2.pdf"]
    assert "The table names 2 files the ZIP does not hold" in page
    assert ">Import</button>" not in page
    response = client.post(reverse("batches:batch_import"), {"concurrency": 2, "max_retries": 2}, follow=True)
    shown = html.unescape(response.content.decode())
    assert "line 3: 'doc' (Document) names 'docs/gone.pdf', which the ZIP does not hold" in shown
    assert not BatchTask.objects.exists()


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
