"""The column mapping remembered per workflow: the New batch page's next first guess (issue 25, item 6)."""

from __future__ import annotations

from django.db import transaction

from batches.models import Workflow

MAX_REMEMBERED = 500  # headers kept per workflow, the latest choices


def remember(workflow_id: int, chosen: dict[str, str]) -> None:
    """Merge the page's mapping into the workflow's (headers of other files stay, the newest win)."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().filter(pk=workflow_id).first()
        if workflow is None:
            return
        merged = {cell: target for cell, target in (workflow.column_map or {}).items() if cell not in chosen}
        merged.update(chosen)
        kept = dict(list(merged.items())[-MAX_REMEMBERED:])
        Workflow.objects.filter(pk=workflow_id).update(column_map=kept)
