"""The new-batch pages accept every format the command line does: CSV, XLSX and JSONL, uploaded and imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from batches.imports import uploads as upload_storage
from batches.models import BatchTask
from tests.xlsxfiles import xlsx_bytes

FILES = {
    "rows.csv": "text,lang\nhello,en\n你好,zh\n".encode(),
    "rows.xlsx": xlsx_bytes([["text", "lang"], ["hello", "en"], ["你好", "zh"]]),
    "rows.jsonl": "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in [
        {"text": "hello", "lang": "en"}, {"text": "你好", "lang": "zh"}]).encode(),
}  # fmt: skip


@pytest.fixture(autouse=True)
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(upload_storage, "uploads_dir", lambda: folder)
    return folder


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
