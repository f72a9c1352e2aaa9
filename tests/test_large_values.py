"""Huge cells: refused at import over the per-cell limit; long values are clipped on every page (exports keep all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from batches.choices import ExecutionStatus
from batches.imports.importers import ImportFileError, parse_file
from batches.models import Execution

BIG = 3 * 1024 * 1024  # characters


def test_a_50_mb_cell_is_refused_at_import_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("text,lang\nsmall,en\n")
        out.write('"' + "x" * (50 * 1024 * 1024) + '",en\n')

    with pytest.raises(ImportFileError) as caught:
        list(parse_file(path).rows)

    # Refused once 9 MB of the line are read (issue 27, L7): tests/test_cell_limits.py measures the memory.
    assert str(caught.value) == "line 3: longer than 9.0 MB (a value over the 1.0 MB limit per cell?)"


def test_the_cell_limit_is_a_setting_and_counts_utf8_bytes(tmp_path: Path, settings: Any) -> None:
    settings.BATCHES_MAX_CELL_BYTES = 300 * 1024
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "' + "中" * (110 * 1024) + '"}\n', encoding="utf-8")

    with pytest.raises(ImportFileError, match=r"line 1: the 'text' value is 0.3 MB, over the 0.3 MB limit"):
        list(parse_file(path).rows)


@pytest.fixture
def huge_row(make_batch: Any) -> Execution:
    batch = make_batch(rows=1)
    execution = batch.executions.get()
    Execution.objects.filter(pk=execution.pk).update(
        status=ExecutionStatus.FAILED,
        inputs={"text": "i" * BIG},
        outputs={"answer": "o" * BIG, "items": list(range(10_000))},
    )
    return Execution.objects.get(pk=execution.pk)


def test_the_execution_page_clips_long_values_and_points_to_the_export(
    admin_client: Client, huge_row: Execution
) -> None:
    response = admin_client.get(reverse("batches:execution_detail", args=[huge_row.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert len(html) < 200_000
    assert "more characters" in html and "more items" in html
    assert reverse("batches:batch_export", args=[huge_row.batch_id, "jsonl"]) in html
    assert 'name="inputs"' not in html  # too large to edit in a text box


def test_the_admin_execution_page_clips_long_values(admin_client: Client, huge_row: Execution) -> None:
    response = admin_client.get(reverse("admin:batches_execution_change", args=[huge_row.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert len(html) < 200_000
    assert "the full value is in the batch" in html


def test_staff_without_view_permission_cannot_open_the_admin_execution_page(login: Any, make_batch: Any) -> None:
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.FAILED)
    client = login("batches.retry_execution")

    response = client.get(reverse("admin:batches_execution_change", args=[execution.pk]))

    assert response.status_code == 403
