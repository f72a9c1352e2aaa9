"""The pages of file inputs: a ZIP through New batch, a row's files on its page, file names in the results."""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from batches.dify.types import InputVariable
from batches.models import BatchFile, BatchTask, Execution
from tests.views.helpers import ADD, CONTROL, RETRY

DOC = InputVariable("doc", "Document", required=True, type="file", allowed_file_types=("document",))


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, variables: Any, settings: Any) -> Path:
    """The app declares a file variable; the ZIPs' files go to a folder of this test's own (uploads: conftest)."""
    variables([DOC, InputVariable("text", "Text")])
    settings.BATCHES_FILES_DIR = tmp_path / "files"
    return tmp_path


def zip_upload(table: str, members: dict[str, bytes]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rows.csv", table)
        for name, data in members.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("contracts.zip", buffer.getvalue(), content_type="application/zip")


def preview_of(client: Any, workflow: Any, file: SimpleUploadedFile) -> Any:
    return client.post(reverse("batches:batch_upload"), {"workflow": workflow.pk, "file": file}, follow=True)


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


def test_a_rows_page_shows_its_files_and_the_results_show_their_names(login, make_workflow):
    client, workflow = login(ADD), make_workflow()
    preview_of(client, workflow, zip_upload("doc,text\ndocs/a.pdf,one\n", {"docs/a.pdf": b"A" * 3000}))
    client.post(reverse("batches:batch_import"), {"concurrency": 2, "max_retries": 2})
    row = Execution.objects.get()
    BatchFile.objects.update(upload_id="0f7a-upload")

    page = client.get(reverse("batches:execution_detail", args=[row.pk])).content.decode()
    results = client.get(reverse("batches:batch_results", args=[row.batch_id])).content.decode()

    assert "docs/a.pdf" in page and "2.9\xa0KB" in page and "0f7a-upload" in page
    assert '<td class="cell col-input">docs/a.pdf</td>' in results
    assert "local_file" not in results
