"""Recovery: the sweep, and everything that triggers it or wakes the runners after a failure.

How a dead worker's row is picked up:
1. At once, by the next claim of any runner (services/claims.py, `take_over`): rows whose lease expired, or whose
   holder is a dead process on this machine, are interrupted and claimed again (services/leases.py).
2. The runner that claims an interrupted row first asks Dify how its run ended (batches/runner/reconcile.py), so a call
   that finished while its worker died is recorded, not paid for twice.
3. The backstop here, `sweep`: expired leases (and this machine's dead processes' rows) back to pending, done
   batches finished, closed batches with rows still to run reopened, runners woken. It runs when a qcluster or a
   web server starts (`start_recovery_sweep`, from apps.py, batchsite/wsgi.py and asgi.py), every minute on the
   django-q2 Schedule made by migration 0002 (`batches.tasks.sweep`), and on demand (`manage.py
   recover_batches`); a restarted worker wakes a runner (`wake_on_worker_spawn`). Several sweeps may run at once:
   expired rows are locked while they are reset, and every other write is guarded.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from batches.choices import BatchStatus, ExecutionStatus
from batches.cluster import nodes
from batches.db import clock
from batches.models import BatchTask, Execution
from batches.services import audit, file_uploads
from batches.services.claims import has_work, wake_runners
from batches.services.leases import NO_LEASE, STALE_FIELDS, interrupt
from batches.services.transitions import finish_done, transition

logger = logging.getLogger(__name__)
SWEEP_CHUNK = 2000
STARTUP_DELAY = 2.0


@dataclass
class BatchRecovery:
    id: int
    name: str
    status: str
    interrupted: int = 0  # expired leases found
    reset: int = 0  # sent back to pending
    failed: int = 0  # past the interruption cap
    finished: bool = False  # nothing left to run, was still marked running
    reopened: bool = False  # was finished or cancelled with rows still to run
    runner_enqueued: bool = False


def sweep(*, dry_run: bool = False, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or clock.now()
    dead = nodes.dead_local_owners()
    report: dict[int, BatchRecovery] = {}
    if dry_run:
        _count_stale(report, now, dead)
    else:
        while _reset_stale_chunk(report, now, dead):
            pass
    _reopen(report, dry_run)
    _finish(report, dry_run, now)
    _wake(report, dry_run)
    if not dry_run:
        file_uploads.sweep_files(now=now)  # the files of ZIP imports no row can need again (issue 15)
    return [asdict(item) for item in sorted(report.values(), key=lambda item: item.id)]


def _entry(report: dict[int, BatchRecovery], batch_id: int) -> BatchRecovery:
    if batch_id not in report:
        batch = BatchTask.objects.only("name", "status").get(pk=batch_id)
        report[batch_id] = BatchRecovery(id=batch_id, name=batch.name, status=batch.status)
    return report[batch_id]


def _count_stale(report: dict[int, BatchRecovery], now: datetime, dead: list[str]) -> None:
    for batch_id, count in Counter(Execution.objects.stale(now, dead).values_list("batch_id", flat=True)).items():
        _entry(report, batch_id).interrupted = count


@transaction.atomic
def _reset_stale_chunk(report: dict[int, BatchRecovery], now: datetime, dead: list[str]) -> int:
    stale = Execution.objects.stale(now, dead).order_by().select_for_update(skip_locked=True, of=("self",))
    rows = list(stale.values(*STALE_FIELDS, "batch_id")[:SWEEP_CHUNK])
    gave_up = interrupt(rows, now)
    back = [row["pk"] for row in rows if row["pk"] not in gave_up]
    Execution.objects.filter(pk__in=back).update(status=ExecutionStatus.PENDING, **NO_LEASE)
    for row in rows:
        entry = _entry(report, row["batch_id"])
        entry.interrupted += 1
        entry.failed += row["pk"] in gave_up
        entry.reset += row["pk"] not in gave_up
    return len(rows)


def _reopen(report: dict[int, BatchRecovery], dry_run: bool) -> None:
    """A finished or cancelled batch with rows still to run (whatever left it so) runs again: nothing else would
    ever reach those rows."""
    closed = BatchTask.objects.filter(status__in=[BatchStatus.FINISHED, BatchStatus.CANCELLED])
    stranded = closed.filter(Exists(Execution.objects.filter(batch=OuterRef("pk")).unfinished()))
    for batch_id in stranded.values_list("pk", flat=True):
        if dry_run or _reopen_stranded(batch_id):
            _entry(report, batch_id).reopened = True


@transaction.atomic
def _reopen_stranded(batch_id: int) -> bool:
    closed = [BatchStatus.FINISHED, BatchStatus.CANCELLED]
    locked = BatchTask.objects.select_for_update(of=("self",)).filter(pk=batch_id, status__in=closed)
    unfinished = Execution.objects.filter(batch_id=batch_id).unfinished()
    if locked.values_list("pk", flat=True).first() is None or not unfinished.exists():
        return False  # a retry or a claim changed it meanwhile
    transition(batch_id, allowed=closed, status=BatchStatus.RUNNING, finished_at=None)
    audit.record_system([batch_id], audit.Action.REOPENED, reason="rows still to run")
    logger.warning("batch %s was closed with rows still to run: running it again", batch_id)
    return True


def _finish(report: dict[int, BatchRecovery], dry_run: bool, now: datetime) -> None:
    done = BatchTask.objects.running().exclude(pk__in=BatchTask.objects.running().with_work()).values_list("pk")
    done_ids = {pk for (pk,) in done}
    if not dry_run:
        finish_done(done_ids, now=now)
    for batch_id in done_ids:
        _entry(report, batch_id).finished = True


def _wake(report: dict[int, BatchRecovery], dry_run: bool) -> None:
    waiting = list(BatchTask.objects.running().with_work().values_list("pk", flat=True))
    if waiting and not dry_run:
        wake_runners()
    for batch_id in waiting:
        _entry(report, batch_id).runner_enqueued = True
    for entry in report.values():
        entry.status = BatchStatus.FINISHED if entry.finished and not dry_run else entry.status


# --- what triggers it -------------------------------------------------------------------------------------------


def start_recovery_sweep() -> None:
    """The start-up backstop of guarantee 5: deferred, in the background, never failing or delaying a start."""
    timer = threading.Timer(STARTUP_DELAY, _sweep_quietly)
    timer.daemon = True
    timer.name = "batches-startup-sweep"
    timer.start()


def _sweep_quietly() -> None:
    try:
        report = sweep()
        logger.info("start-up recovery sweep: %s batches looked at", len(report))
    except Exception as exc:  # an unmigrated or unreachable database must not stop the server
        logger.warning("start-up recovery sweep skipped: %s", exc)
    finally:
        connection.close()


def wake_on_worker_spawn(**kwargs: object) -> None:
    """A worker was (re)started, maybe after one died mid-slice: wake a runner so its rows are taken over within
    one lease instead of at the next scheduled sweep."""
    try:
        if has_work():
            wake_runners()
    except Exception as exc:
        logger.warning("could not wake a runner: %s", exc)
