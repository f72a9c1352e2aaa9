"""The rows of a batch as a comparison test wants them."""

from __future__ import annotations

from typing import Any

from batches.models import BatchTask, Execution


def fill(batch: BatchTask, rows: list[tuple[dict[str, Any], str, Any]]) -> dict[int, int]:
    """Give the batch's rows these (inputs, status, outputs); returns {index: execution id}."""
    Execution.objects.filter(batch=batch).delete()
    made = Execution.objects.bulk_create(
        Execution(batch=batch, index=i, inputs=inputs, status=status, outputs=outputs)
        for i, (inputs, status, outputs) in enumerate(rows)
    )
    return {row.index: row.pk for row in made}
