"""Retention: old ended batches are deleted with their rows, attempts and files, in small chunks (issue 30).

A batch is first marked (`pruning_since`, one guarded UPDATE: ended, nothing to run): from then on no page or
command shows it, so a prune killed midway leaves no half-deleted batch in sight, and the next prune (the command
or the minute sweep) finishes it. Then its rows go in chunks of CHUNK, each chunk its own short transaction (its
attempts, then the rows); then its files on disk; then the batch itself, in one short transaction that first
checks it still has nothing to run (a row retried meanwhile un-marks it instead).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Sum

from batches.choices import ENDED, ExecutionStatus
from batches.conf import settings
from batches.db import clock
from batches.models import Attempt, BatchCount, BatchFile, BatchTask, Execution
from batches.services import audit, file_uploads

logger = logging.getLogger(__name__)
CHUNK = 2_000  # rows per transaction: a few tens of milliseconds of locks
FINAL = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


@dataclass
class PruneReport:
    batches: int = 0
    executions: int = 0
    attempts: int = 0
    files: int = 0

    def add(self, other: PruneReport) -> None:
        for name in ("batches", "executions", "attempts", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def prunable(
    *, older_than_days: float, statuses: tuple[str, ...] = ENDED, now: datetime | None = None
) -> QuerySet[BatchTask]:
    """Batches to prune: those `BatchTask.objects.prunable` names, for an age in days."""
    return BatchTask.objects.prunable(before=(now or clock.now()) - timedelta(days=older_than_days), statuses=statuses)


def measure(batches: QuerySet[BatchTask]) -> PruneReport:
    """What pruning `batches` would delete (the rows from the kept counts; attempts and files counted)."""
    ids = list(batches.values_list("pk", flat=True))
    kept = BatchCount.objects.filter(batch_id__in=ids).aggregate(
        n=Sum("pending") + Sum("running") + Sum("succeeded") + Sum("failed") + Sum("cancelled")
    )
    return PruneReport(
        batches=len(ids),
        executions=int(kept["n"] or 0),
        attempts=Attempt.objects.filter(execution__batch_id__in=ids).count(),
        files=BatchFile.objects.filter(batch_id__in=ids).count(),
    )


def prune(
    batches: QuerySet[BatchTask], *, budget_seconds: float | None = None, actor: audit.Actor | None = None
) -> PruneReport:
    """Delete `batches` (those still prunable when marked), chunk by chunk; stops between chunks once
    `budget_seconds` have passed (what is left stays marked, for the next prune). One audit entry says who
    pruned which batches (the app itself for the sweep's prune)."""
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    report = PruneReport()
    pruned: list[int] = []
    for batch_id in list(batches.values_list("pk", flat=True)):
        if not _mark(batch_id):
            continue
        report.add(_prune_one(batch_id, deadline))
        pruned.append(batch_id)
        if deadline is not None and time.monotonic() > deadline:
            break
    if pruned:
        audit.record(actor, audit.Action.PRUNE, rows=report.executions, detail={"batches": pruned})
    return report


def prune_old(*, now: datetime | None = None, budget_seconds: float = 20) -> PruneReport:
    """The minute sweep's prune: batches older than BATCHES_KEEP_DAYS when set, and always the prunes left half
    done (a killed command, the admin's action past its time budget)."""
    keep_days = settings.BATCHES_KEEP_DAYS
    batches: QuerySet[BatchTask]
    if keep_days is None:
        batches = BatchTask.objects.filter(pruning_since__isnull=False)
    else:
        batches = prunable(older_than_days=keep_days, now=now)
    report = prune(batches, budget_seconds=budget_seconds)
    if report.batches or report.executions:
        logger.info("pruned %s batches (%s executions)", report.batches, report.executions)
    return report


def under_way(batch_ids: list[int]) -> int:
    """How many of these batches are marked and not yet gone (their prune goes on in the minute sweep)."""
    return BatchTask.objects.filter(pk__in=batch_ids, pruning_since__isnull=False).count()


def _mark(batch_id: int) -> bool:
    """Hide the batch from every page, if it is ended with nothing to run (or already being pruned); else show it
    again (a batch marked earlier whose rows were retried since)."""
    unfinished = Execution.objects.filter(batch=OuterRef("pk")).unfinished()
    rows = BatchTask.objects.filter(pk=batch_id, status__in=ENDED).exclude(Exists(unfinished))
    if rows.filter(pruning_since__isnull=False).exists() or rows.update(pruning_since=clock.now()):
        return True
    BatchTask.objects.filter(pk=batch_id, pruning_since__isnull=False).update(pruning_since=None)
    return False


def _prune_one(batch_id: int, deadline: float | None) -> PruneReport:
    report = PruneReport()
    while deadline is None or time.monotonic() < deadline:
        executions, attempts = _delete_chunk(batch_id)
        report.executions += executions
        report.attempts += attempts
        if executions < CHUNK:
            report.files, report.batches = _delete_batch(batch_id)
            break
    return report


@transaction.atomic
def _delete_chunk(batch_id: int) -> tuple[int, int]:
    ids = list(
        Execution.objects.filter(batch_id=batch_id, status__in=FINAL).order_by().values_list("pk", flat=True)[:CHUNK]
    )
    attempts, _ = Attempt.objects.filter(execution_id__in=ids).delete()
    _, deleted = Execution.objects.filter(pk__in=ids, status__in=FINAL).only("pk").delete()
    return deleted.get(Execution._meta.label, 0), attempts


def _delete_batch(batch_id: int) -> tuple[int, int]:
    """The batch's files (on disk when no other batch names them), then the batch; or un-mark it, when a row was
    retried while its rows were being deleted."""
    with transaction.atomic():
        batch = BatchTask.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None:
            return 0, 0
        if Execution.objects.filter(batch_id=batch_id).exists():
            BatchTask.objects.filter(pk=batch_id).update(pruning_since=None)
            return 0, 0
        own = BatchFile.objects.filter(batch_id=batch_id)
        files = list(own.exclude(stored="").values_list("stored", flat=True))
        others = BatchFile.objects.filter(stored__in=files).exclude(batch_id=batch_id)
        shared = set(others.values_list("stored", flat=True))  # a batch run again shares its source's files
        count = own.count()
        batch.delete()
        removed = [stored for stored in files if stored not in shared]
        transaction.on_commit(lambda: _remove_files(removed))
    return count, 1


def _remove_files(stored: list[str]) -> None:
    for name in stored:
        path = file_uploads.stored_path(name)
        if path is not None:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the import's folder, once its last file is gone
                path.parent.rmdir()
