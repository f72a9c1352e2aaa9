"""Upload-once state of a batch's files: each file is uploaded to Dify by one process, and its id reused.

A process that needs a file without an upload id takes the file's upload lease (a guarded write); the others'
rows wait for the id it stores. A lease whose holder died expires and is taken over. Dify keeps uploads for a
limited time: an id older than BATCHES_UPLOAD_REUSE_HOURS, or one Dify said is gone (`forget`), is uploaded again,
and an id is reused only by runs under the `user` it was uploaded as (newer Dify looks uploads up by uploader).
These run on the runner's own thread (batches/runner/row_call.py asks it), like every other database write of a call.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from batches.choices import BatchStatus, ErrorType
from batches.cluster import nodes
from batches.conf import settings
from batches.db import clock
from batches.imports.files import FileInputError
from batches.models import Attempt, BatchFile, Workflow
from batches.services import throttle

logger = logging.getLogger(__name__)
SWEEP_CHUNK = 1000


@dataclass(frozen=True)
class Taken:
    """What a row may do about one file: use `upload_id`, upload it (`mine`), or wait for another process."""

    file_id: int | None  # None: the batch has no such file
    upload_id: str = ""
    mine: bool = False
    path: Path | None = None  # the bytes on disk; None once they were removed
    size: int = 0


def take(batch_id: int, name: str, *, owner: str, lease_seconds: float, user: str) -> Taken:
    """The file's upload id for runs as `user`, or its upload lease (held by this `owner` now, or another's).

    A lease whose holder is a dead process of this machine is taken over at once, as its rows are; another
    machine's holder keeps it until it expires."""
    row = BatchFile.objects.filter(batch_id=batch_id, name=name).first()
    if row is None:
        return Taken(None)
    now = clock.now()
    if row.upload_id and row.upload_user == user and row.uploaded_at and row.uploaded_at > now - reuse_period():
        return Taken(row.pk, upload_id=row.upload_id)
    free = Q(upload_owner="") | Q(upload_owner=owner) | Q(upload_until__lt=now)
    if row.upload_owner and nodes.is_dead_local(row.upload_owner):
        free |= Q(upload_owner=row.upload_owner)
    won = BatchFile.objects.filter(free, pk=row.pk, upload_id=row.upload_id).update(
        upload_owner=owner, upload_until=now + timedelta(seconds=lease_seconds)
    )
    return Taken(row.pk, mine=bool(won), path=stored_path(row.stored), size=row.size)


def upload_token(workflow_id: int) -> bool:
    """One token of the workflow's rpm bucket for an upload (a request to Dify like a call); True without a limit."""
    rpm = Workflow.objects.filter(pk=workflow_id).values_list("rpm_limit", flat=True).first()
    if not rpm:
        return True
    with transaction.atomic():
        bucket, got = throttle.take_tokens(workflow_id, rpm, 1, clock.now())
        throttle.give_back(bucket, 0)  # saves the bucket
    return got > 0


def store(file_id: int, *, upload_id: str, user: str) -> None:
    """Keep the id Dify gave for runs as `user` (whoever holds the lease now: both ids are good)."""
    BatchFile.objects.filter(pk=file_id).update(
        upload_id=upload_id,
        upload_user=user,
        uploaded_at=clock.now(),
        uploads=F("uploads") + 1,
        upload_owner="",
        upload_until=None,
    )
    logger.info("file %s uploaded as %s", file_id, upload_id)


def release(file_id: int, *, owner: str) -> None:
    """The upload failed: let the next row (of any process) try at once."""
    BatchFile.objects.filter(pk=file_id, upload_owner=owner).update(upload_owner="", upload_until=None)


def forget(file_id: int, *, upload_id: str, older_only: bool = False) -> bool:
    """Dify said the upload is gone: the next row uploads the file again (once, whoever asks first).

    `older_only`: only if it was uploaded over BATCHES_UPLOAD_RECHECK_MINUTES ago (a streamed call went silent,
    which is how Dify answers a lost upload in streaming mode). True when the id is no longer stored."""
    rows = BatchFile.objects.filter(pk=file_id, upload_id=upload_id)
    if older_only:
        recheck = timedelta(minutes=settings.BATCHES_UPLOAD_RECHECK_MINUTES)
        rows = rows.filter(uploaded_at__lt=clock.now() - recheck)
    forgotten = rows.update(upload_id="", uploaded_at=None)
    return bool(forgotten) or not BatchFile.objects.filter(pk=file_id, upload_id=upload_id).exists()


def went_silent(execution_id: int) -> bool:
    """The row's last try timed out without announcing a run (how Dify answers refused files when streaming)."""
    last = Attempt.objects.filter(execution_id=execution_id).order_by("-number").first()
    return last is not None and last.error_type == ErrorType.TIMEOUT and not last.workflow_run_id


def reuse_period() -> timedelta:
    return timedelta(hours=settings.BATCHES_UPLOAD_REUSE_HOURS)


def stored_path(stored: str) -> Path | None:
    return Path(settings.BATCHES_FILES_DIR) / stored if stored else None


def copy_files(source_id: int, *, batch_id: int, same_app: bool) -> None:
    """A batch run again names its source's files: the same bytes on disk, and the same uploads on the same app
    (another app, perhaps another Dify, uploads them again). Called inside the rerun's transaction: the source's
    rows are locked first, so a sweep removing them waits for this reference to be committed, and then sees it."""
    sources = list(BatchFile.objects.filter(batch_id=source_id).order_by("pk").select_for_update())
    copies = [
        BatchFile(batch_id=batch_id, name=row.name, size=row.size, stored=row.stored, **_upload(row, same_app))
        for row in sources
    ]
    BatchFile.objects.bulk_create(copies)


def _upload(row: BatchFile, same_app: bool) -> dict[str, Any]:
    """The source's upload, reused only by runs under its `user` (BATCHES_UPLOAD_SHARED_USER: the same app's)."""
    if not same_app:
        return {}
    return {"upload_id": row.upload_id, "uploaded_at": row.uploaded_at, "upload_user": row.upload_user}


def sweep_files(*, now: datetime | None = None) -> int:
    """Remove the bytes of files no batch can need again: those of batches that ended (finished or cancelled)
    over BATCHES_FILES_KEEP_DAYS ago, and of batches imported and never started for BATCHES_FILES_UNSTARTED_DAYS
    (their rows then fail naming the file), unless a batch still within its window names the same bytes (a rerun).
    Until then any ended batch may be run again, on any app, and its failed rows retried by hand. Upload ids are
    kept. Returns how many rows lost their file.

    The rows are locked, and the batches naming the same bytes read, in one transaction: a rerun that copies a
    reference locks the same rows (copy_files), so either it commits first and is seen here, or it copies the
    emptied reference (the file was past its window). The bytes go once that transaction committed (the sweep
    runs in no outer transaction)."""
    now = now or clock.now()
    ended = [BatchStatus.FINISHED, BatchStatus.CANCELLED]
    keep = timedelta(days=settings.BATCHES_FILES_KEEP_DAYS)
    unstarted = Q(
        batch__status=BatchStatus.PENDING,
        batch__started_at__isnull=True,
        batch__created_at__lt=now - timedelta(days=settings.BATCHES_FILES_UNSTARTED_DAYS),
    )
    done = Q(batch__status__in=ended, batch__finished_at__lt=now - keep) | unstarted
    with transaction.atomic():
        expired = BatchFile.objects.exclude(stored="").filter(done).order_by("pk").select_for_update(of=("self",))
        rows = list(expired.values_list("pk", "stored")[:SWEEP_CHUNK])
        needed = BatchFile.objects.filter(stored__in=[stored for _, stored in rows]).exclude(done)
        kept = set(needed.values_list("stored", flat=True))
        rows = [(pk, stored) for pk, stored in rows if stored not in kept]
        BatchFile.objects.filter(pk__in=[pk for pk, _ in rows]).update(stored="")
    for stored in sorted({stored for _, stored in rows}):  # only once the emptied references are committed
        _remove(stored)
    if rows:
        logger.info("removed %s files of batches ended over %s days ago", len(rows), settings.BATCHES_FILES_KEEP_DAYS)
    return len(rows)


def _remove(stored: str) -> None:
    path = stored_path(stored)
    if path is None:
        return
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the import's folder, once its last file is gone
        path.parent.rmdir()


class BatchFiles:
    """A batch's kept files as a files.Archive: edited inputs of a manual retry may name them, and nothing else."""

    def __init__(self, batch_id: int) -> None:
        self.sizes = dict(BatchFile.objects.filter(batch_id=batch_id).values_list("name", "size"))

    def take(self, name: str) -> int | None:
        if name not in self.sizes:
            raise FileInputError(f"names {name!r}, which is not one of the batch's files")
        return int(self.sizes[name])
