"""Long values are clipped on the execution pages, the site's and the admin's (batches.display.clipping), which
point to the export for the whole value."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from batches.choices import ExecutionStatus
from batches.models import Execution

BIG = 3 * 1024 * 1024  # characters


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
