"""Small object helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import pytest

from batches.models import BatchTask, Execution, Workflow


@pytest.fixture
def make_workflow(db: None) -> Any:
    def make(**fields: Any) -> Workflow:
        defaults: dict[str, Any] = {
            "name": f"wf-{Workflow.objects.count() + 1}",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "app-secret-key",
        }
        return Workflow.objects.create(**{**defaults, **fields})

    return make


@pytest.fixture
def make_batch(make_workflow: Any) -> Any:
    def make(rows: int = 3, workflow: Workflow | None = None, **fields: Any) -> BatchTask:
        workflow = workflow or make_workflow()
        batch = BatchTask.objects.create(
            name=fields.pop("name", "batch"), workflow=workflow, config=workflow.snapshot(), total=rows, **fields
        )
        Execution.objects.bulk_create(Execution(batch=batch, index=i, inputs={"text": f"row {i}"}) for i in range(rows))
        return batch

    return make
