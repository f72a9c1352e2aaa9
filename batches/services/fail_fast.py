"""Stop a batch that only fails: when its first BATCHES_FAIL_FAST_ROWS finished rows all failed with one error
type (2,000 rows of a file the app refuses, a key without the model's quota…), the batch pauses with that reason
instead of paying for every other row. Rows already in flight finish normally; resuming runs the rest.

Separate from a batch's own failure threshold (services/results.py), which staff set per batch. The first rows are
looked at once (`BatchTask.first_rows_checked`, a guarded flag): the first writer of results that sees that many
finished rows decides, and a batch resumed after the pause is not paused again for the same rows.
"""

from __future__ import annotations

import logging

from batches.choices import ExecutionStatus
from batches.conf import settings
from batches.models import BatchTask, Execution
from batches.services.transitions import pause

logger = logging.getLogger(__name__)


def pause_if_only_failing(batch_id: int) -> bool:
    """After a write with failures: pause the batch when its first N finished rows all failed the same way."""
    first = settings.BATCHES_FAIL_FAST_ROWS
    if not first or not BatchTask.objects.filter(pk=batch_id, first_rows_checked=False).exists():
        return False
    ended = Execution.objects.filter(batch_id=batch_id).ended().order_by()
    if ended[:first].count() < first or not _decide(batch_id):
        return False
    outcomes = list(ended.order_by("finished_at", "pk").values_list("status", "error_type", "error")[:first])
    kinds = {(status, error_type) for status, error_type, _ in outcomes}
    if len(kinds) != 1 or outcomes[0][0] != ExecutionStatus.FAILED:
        return False
    _, error_type, error = outcomes[-1]
    reason = f"Paused: the first {first} finished rows all failed with {error_type} (last: {error})"
    return pause(batch_id, reason=reason)


def _decide(batch_id: int) -> bool:
    """Claim the one decision for this batch (a conditional UPDATE): True for the writer that won it."""
    return bool(BatchTask.objects.filter(pk=batch_id, first_rows_checked=False).update(first_rows_checked=True))
