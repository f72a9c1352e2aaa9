"""Small helpers shared by the page tests."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.models import BatchTask, Execution, Workflow

S = BatchStatus
E = ExecutionStatus
SECRET = "app-TOP-SECRET-KEY-123"
CONTROL = "batches.control_batchtask"
RETRY = "batches.retry_execution"
ADD = "batches.add_batchtask"
BOM = b"\xef\xbb\xbf"


def fail_rows(batch: BatchTask, count: int, error: str = "boom", error_type: str = ErrorType.UPSTREAM_ERROR) -> None:
    rows = Execution.objects.filter(batch=batch, index__lt=count)
    rows.update(status=E.FAILED, error_type=error_type, error=error, http_status=502, attempt_count=3)


def set_rows(batch: BatchTask, indexes: range | list[int], **fields: Any) -> None:
    Execution.objects.filter(batch=batch, index__in=list(indexes)).update(**fields)


def action_url(batch: BatchTask, action: str) -> str:
    return reverse("batches:batch_action", args=[batch.pk, action])


def url(name: str, *args: Any) -> str:
    return reverse(f"batches:{name}", args=args)


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def csv_upload(content: str | bytes, name: str = "rows.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


def rows_by_index(batch: BatchTask) -> dict[int, Execution]:
    return {row.index: row for row in batch.executions.all()}


def retry_data(batch: BatchTask, scope: str, indexes: list[int] | tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
    rows = rows_by_index(batch)
    data: dict[str, Any] = {"scope": scope, "execution": [rows[i].pk for i in indexes], **extra}
    if scope == "one":
        data = {"one": rows[indexes[0]].pk}
    return data


def upload(client: Client, workflow: Workflow, file: SimpleUploadedFile, **kwargs: Any) -> Any:
    return client.post(url("batch_upload"), {"workflow": workflow.pk, "file": file}, **kwargs)


def zip_upload(table: str, members: dict[str, bytes]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rows.csv", table)
        for name, data in members.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("contracts.zip", buffer.getvalue(), content_type="application/zip")


def preview_of(client: Any, workflow: Any, file: SimpleUploadedFile) -> Any:
    return client.post(reverse("batches:batch_upload"), {"workflow": workflow.pk, "file": file}, follow=True)
