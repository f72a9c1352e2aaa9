"""Helpers shared by the services' tests."""

from datetime import timedelta

from django.utils import timezone

from batches.dify.types import CallResult
from batches.models import Execution


def ok_result(**fields):
    return CallResult(
        **{"ok": True, "outputs": {"answer": "x"}, "total_tokens": 7, "workflow_run_id": "run-1", **fields}
    )


def failed_result(error_type, **fields):
    return CallResult(ok=False, error_type=error_type, error=f"{error_type} happened", http_status=500, **fields)


def expire(*execution_ids):
    rows = Execution.objects.filter(pk__in=execution_ids) if execution_ids else Execution.objects.running()
    rows.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
