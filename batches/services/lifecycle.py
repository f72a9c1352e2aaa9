"""Batch and workflow state changes requested by people (admin, pages, commands).

Conventions: the object acted on (a batch id, a workflow, a queryset) is positional and every option is
keyword-only; a change the batch's state does not allow raises `TransitionError` (from `transitions`, the one
guarded write every status change goes through); retries answer a `RetryReport`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from batches.choices import BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.imports import files, importers, inputs
from batches.imports.importers import Record
from batches.models import Attempt, BatchTask, Execution, Workflow
from batches.runner.reconcile import RUN_ENDED_ERRORS
from batches.services import audit, file_imports, file_uploads, notify
from batches.services.audit import Action, Actor
from batches.services.claims import wake_runners
from batches.services.leases import STALE_FIELDS, ended_attempt
from batches.services.transitions import ACTIVE, ENDED, TransitionError, require, transition
from batches.services.workflows import DifyMoved, check_key_for_base_url, read_input_variables

logger = logging.getLogger(__name__)
IMPORT_CHUNK = 2000
BULK_CHANGE = 1000  # rows changed at once past which the planner's statistics are refreshed
# What claims and pages filter and sort on; the JSON columns would only make ANALYZE slower.
INPUTS_FIELD = Execution._meta.get_field("inputs")
EXTRA_FIELD = Execution._meta.get_field("extra")
PLANNED_COLUMNS = ("batch", "status", "index", "not_before", "lease_expires_at", "error_type", "finished_at")


@transaction.atomic
def save_workflow(name: str, *, actor: Actor | None = None, **fields: Any) -> tuple[Workflow, bool]:
    """Create a workflow or update the given fields of an existing one (ValidationError if invalid).

    A new base URL needs the API key again (services.workflows.check_key_for_base_url).
    """
    workflow = Workflow.objects.filter(name=name).first()
    created = workflow is None
    workflow = workflow or Workflow(name=name)
    check_key_for_base_url(workflow, base_url=fields.get("base_url"), api_key=fields.get("api_key"))
    changed = [key for key, value in fields.items() if value is not None and getattr(workflow, key) != value]
    for key in changed:
        setattr(workflow, key, fields[key])
    workflow.full_clean()
    workflow.save()
    audit.workflow_changed(workflow.pk, changed, actor=actor, created=created)
    return workflow, created


def typed_inputs(execution: Execution, *, edited: dict[str, Any]) -> dict[str, Any]:
    """Edited inputs converted to the types the app declares, before a manual retry (inputs.InputError if the app
    would refuse them). Asks the app (network): call it outside any lock."""
    batch = execution.batch
    try:
        variables = read_input_variables(batch.workflow, config=batch.config) or None
    except DifyMoved as moved:
        raise inputs.InputError(str(moved)) from None
    if not variables:
        return edited
    with files.archive_scope(file_uploads.BatchFiles(batch.pk)):  # a ZIP batch's rows may name its files
        return inputs.convert_row(edited, variables)


@dataclass(kw_only=True)
class ImportOptions:
    name: str = ""
    concurrency: int | None = None
    max_retries: int = 2
    start: bool = True
    created_by_id: int | None = None
    mapping: dict[str, str] | None = None  # header → variable or "" ignored (batches/imports/mapping.py)
    actor: Actor | None = None  # who starts it (when `start`)


def import_batch(
    workflow: Workflow,
    path: str | Path,
    *,
    filename: str | None = None,
    options: ImportOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BatchTask:
    """Create the whole batch from a file, or nothing (ImportFileError names the line)."""
    options = options or ImportOptions()
    filename = filename or Path(path).name
    if file_imports.is_zip(filename):  # the table and the files it names (issue 15)
        return file_imports.import_archive(workflow, path, filename=filename, options=options, on_progress=on_progress)
    return import_table(workflow, path, filename=filename, options=options, on_progress=on_progress)


def import_table(
    workflow: Workflow,
    path: str | Path,
    *,
    filename: str,
    options: ImportOptions,
    on_progress: Callable[[int], None] | None = None,
    then: Callable[[BatchTask], None] | None = None,
) -> BatchTask:
    """Create the batch of a table file; `then` runs in the batch's transaction once its rows are in."""
    # Network, so before any transaction. An app that declares no variables is not checked against.
    variables = read_input_variables(workflow) or None
    parsed = importers.parse_file(
        path, filename=filename, variables=variables, mode=workflow.mode, mapping=options.mapping
    )
    # SQLite has one writer: read, check and encode the whole file before taking the write lock, so runners'
    # writes (lease renewals among them) wait a second, not the tens of seconds a 200k-row file takes to parse.
    prepared = _prepared_rows(parsed.records) if connection.vendor == "sqlite" else None
    with transaction.atomic():
        batch = _new_batch(workflow, filename, options)
        if prepared is None:
            batch.total = _insert_rows(batch, parsed.records, on_progress)
        else:
            batch.total = _insert_prepared(batch, prepared, on_progress)
        if not batch.total:
            raise importers.ImportFileError("the file has no data rows")
        batch.columns, batch.extra_columns = parsed.columns, parsed.ignored
        batch.save(update_fields=["total", "columns", "extra_columns"])
        if then is not None:
            then(batch)
        transaction.on_commit(refresh_statistics)  # before the runners' wake-up
        if options.start:
            start_batch(batch.pk, actor=options.actor)
    logger.info("imported batch %s: %s rows from %s", batch.pk, batch.total, filename)
    return batch


def _new_batch(workflow: Workflow, filename: str, options: ImportOptions) -> BatchTask:
    return BatchTask.objects.create(
        name=options.name or Path(filename).stem,
        workflow=workflow,
        source_filename=filename,
        concurrency=options.concurrency or workflow.concurrency,
        max_retries=options.max_retries,
        config=workflow.snapshot(),
        created_by_id=options.created_by_id,
    )


def refresh_statistics() -> None:
    """Refresh PostgreSQL's statistics on executions after a bulk change (an import, a mass retry).

    Autovacuum analyzes only after a tenth of the table changed. Until then the planner believes a new batch has no
    pending rows, and every claim sorts all of them: 8 ms instead of 0.5 ms at 20,000 rows, ten times a second.
    """
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        planned = [field for field in Execution._meta.concrete_fields if field.name in PLANNED_COLUMNS]
        columns = ", ".join(quote(field.column) for field in planned)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {quote(Execution._meta.db_table)} ({columns})")


def _insert_rows(batch: BatchTask, rows: Iterator[Record], on_progress: Callable[[int], None] | None) -> int:
    if connection.vendor == "postgresql":
        return _copy_rows(batch, rows, on_progress)
    count = 0
    while chunk := list(islice(rows, IMPORT_CHUNK)):
        Execution.objects.bulk_create(
            Execution(batch=batch, index=count + offset, inputs=inputs, extra=extra)
            for offset, (inputs, extra) in enumerate(chunk)
        )
        count += len(chunk)
        if on_progress:
            on_progress(count)
    return count


def _row_fields() -> list[Any]:
    return [field for field in Execution._meta.concrete_fields if not field.primary_key]


def _prepared_rows(rows: Iterator[Record]) -> list[list[Any]]:
    """Every row's column values, ready for the database (the batch column is filled in at insert time)."""
    fields = _row_fields()
    template = Execution(index=0)
    values = [field.get_db_prep_save(getattr(template, field.attname), connection) for field in fields]
    at_index, at_inputs = fields.index(Execution._meta.get_field("index")), fields.index(INPUTS_FIELD)
    at_extra = fields.index(EXTRA_FIELD)
    prepared = []
    for index, (row, extra) in enumerate(rows):
        values[at_index], values[at_inputs] = index, INPUTS_FIELD.get_db_prep_save(row, connection)
        values[at_extra] = EXTRA_FIELD.get_db_prep_save(extra, connection)
        prepared.append(list(values))
    return prepared


def _insert_prepared(batch: BatchTask, prepared: list[list[Any]], on_progress: Callable[[int], None] | None) -> int:
    fields = _row_fields()
    at_batch = fields.index(Execution._meta.get_field("batch"))
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(Execution._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608 - model names
    with connection.cursor() as cursor:
        for start in range(0, len(prepared), IMPORT_CHUNK):
            chunk = prepared[start : start + IMPORT_CHUNK]
            for values in chunk:
                values[at_batch] = batch.pk
            cursor.executemany(sql, chunk)
            if on_progress:
                on_progress(start + len(chunk))
    return len(prepared)


def _copy_rows(batch: BatchTask, rows: Iterator[Record], on_progress: Callable[[int], None] | None) -> int:
    """PostgreSQL's COPY, at a third of bulk_create's CPU: a row is its index and inputs, the rest the defaults."""
    fields = [field for field in Execution._meta.concrete_fields if not field.primary_key]
    template = Execution(batch=batch, index=0)
    values = [field.get_db_prep_save(getattr(template, field.attname), connection) for field in fields]
    at_index, at_inputs = fields.index(Execution._meta.get_field("index")), fields.index(INPUTS_FIELD)
    at_extra = fields.index(EXTRA_FIELD)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    count = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {quote(Execution._meta.db_table)} ({columns}) FROM STDIN"  # noqa: S608 - names from the model
        ) as copy,
    ):
        for count, (inputs, extra) in enumerate(rows, 1):
            values[at_index], values[at_inputs] = count - 1, INPUTS_FIELD.get_db_prep_save(inputs, connection)
            values[at_extra] = EXTRA_FIELD.get_db_prep_save(extra, connection)
            copy.write_row(values)
            if on_progress and count % IMPORT_CHUNK == 0:
                on_progress(count)
    if on_progress and count % IMPORT_CHUNK:
        on_progress(count)
    return count


@transaction.atomic
def start_batch(batch_id: int, *, actor: Actor | None = None) -> None:
    started = transition(batch_id, allowed=[BatchStatus.PENDING], status=BatchStatus.RUNNING, started_at=timezone.now())
    require(started, batch_id, "is not pending: it cannot be started")
    audit.record(actor, Action.START, batch_id=batch_id)
    transaction.on_commit(wake_runners)


@transaction.atomic
def pause_batch(batch_id: int, *, reason: str = "", actor: Actor | None = None) -> None:
    paused = transition(batch_id, allowed=[BatchStatus.RUNNING], status=BatchStatus.PAUSED, status_reason=reason[:500])
    require(paused, batch_id, "is not running: it cannot be paused")
    audit.record(actor, Action.PAUSE, batch_id=batch_id, reason=reason)
    notify.batch_event([batch_id], notify.Event.PAUSED)


@transaction.atomic
def resume_batch(batch_id: int, *, actor: Actor | None = None) -> None:
    resumed = transition(batch_id, allowed=[BatchStatus.PAUSED], status=BatchStatus.RUNNING, status_reason="")
    require(resumed, batch_id, "is not paused: it cannot be resumed")
    audit.record(actor, Action.RESUME, batch_id=batch_id)
    transaction.on_commit(wake_runners)


@transaction.atomic
def set_concurrency(batch_id: int, *, concurrency: int, actor: Actor | None = None) -> None:
    """Change how many rows of a batch may run at once; runners see it at their next claim."""
    if not 1 <= concurrency <= 10_000:
        raise ValueError("concurrency must be between 1 and 10000")
    changed = transition(batch_id, allowed=ACTIVE, concurrency=concurrency)
    require(changed, batch_id, "is finished or cancelled: its concurrency cannot be changed")
    audit.record(actor, Action.SETTINGS, batch_id=batch_id, detail={"concurrency": concurrency})


EDITABLE_SETTINGS = {"name", "concurrency", "max_retries", "failure_threshold", "failure_threshold_min_rows"}


@transaction.atomic
def update_settings(batch_id: int, *, actor: Actor | None = None, **changes: Any) -> None:
    """Change a batch's editable settings (not its state) with one UPDATE of just those columns."""
    unknown = set(changes) - EDITABLE_SETTINGS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if changes:
        BatchTask.objects.filter(pk=batch_id).update(**changes)
        audit.record(actor, Action.SETTINGS, batch_id=batch_id, detail=changes)


def _reopen(batch_id: int, rows: int) -> None:
    """A retry of an ended batch's rows runs it again, keeping how it had ended and how many rows came back."""
    reopened = {"reopened_from": F("status"), "reopened_rows": rows}
    transition(batch_id, allowed=ENDED, status=BatchStatus.RUNNING, finished_at=None, status_reason="", **reopened)


def _lock_batches(batch_ids: Iterable[int]) -> None:
    """Retry, cancel, claims and finishing serialise on the batch row (always taken in id order), so none of them
    acts on rows another is changing: no finished or cancelled batch is left with pending rows."""
    locked = BatchTask.objects.filter(pk__in=list(batch_ids)).order_by("pk").select_for_update(of=("self",))
    list(locked.values_list("pk", flat=True))


@transaction.atomic
def cancel_batch(batch_id: int, *, actor: Actor | None = None) -> int:
    """Cancel the batch and its unfinished rows; returns how many rows were cancelled."""
    now = timezone.now()
    _lock_batches([batch_id])
    changed = transition(batch_id, allowed=ACTIVE, status=BatchStatus.CANCELLED, finished_at=now)
    require(changed, batch_id, "is finished or cancelled: it cannot be cancelled")
    # Locked, so a result being written now is either seen (and its row is no longer running) or waits: never a
    # cancelled Attempt with the number of the Attempt that result writes.
    locked = Execution.objects.filter(batch_id=batch_id).running().order_by().select_for_update(of=("self",))
    running = list(locked.values(*STALE_FIELDS))
    cancelled = Attempt.Outcome.CANCELLED
    Attempt.objects.bulk_create(ended_attempt(row, now, "Cancelled by staff", cancelled) for row in running)
    # Clearing the lease token fences off the in-flight calls: their results are discarded.
    ended = (
        Execution.objects.filter(batch_id=batch_id)
        .unfinished()
        .update(
            status=ExecutionStatus.CANCELLED,
            error_type=ErrorType.CANCELLED,
            error="Cancelled by staff",
            finished_at=now,
            lease_owner="",
            lease_token="",
            lease_expires_at=None,
            not_before=None,
        )
    )
    audit.record(actor, Action.CANCEL, batch_id=batch_id, rows=ended)
    notify.batch_event([batch_id], notify.Event.CANCELLED)  # after the rows, so the message counts them
    return ended


@dataclass
class RetryReport:
    retried: int
    skipped: int
    batches: int


@transaction.atomic
def retry_executions(
    executions: Any,
    *,
    include_cancelled: bool = False,
    inputs: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> RetryReport:
    """Send failed (and optionally cancelled) rows of `executions` back to pending as a manual retry."""
    retryable = [ExecutionStatus.FAILED] + ([ExecutionStatus.CANCELLED] if include_cancelled else [])
    selected = executions.count()
    rows = Execution.objects.filter(pk__in=executions.values("pk"), status__in=retryable)
    batch_ids = set(rows.order_by().values_list("batch_id", flat=True).distinct())
    _lock_batches(batch_ids)
    picked = list(rows.order_by().values_list("batch_id", "batch__workflow_id", "pk"))  # locked: what UPDATE changes
    per_batch = Counter(batch_id for batch_id, _, _ in picked)  # for "cancelled, then N rows retried"
    # A row's latest run is looked up before it pays again, unless its end was seen or its inputs are edited.
    ended = Case(When(error_type__in=RUN_ENDED_ERRORS, then=Value("")), default=F("workflow_run_id"))
    changes: dict[str, Any] = {"workflow_run_id": ended}  # the Attempts keep every run id
    if inputs is not None:
        _keep_sent_inputs(rows, inputs)
        changes.update(inputs=inputs, workflow_run_id="")
    retried = rows.update(
        status=ExecutionStatus.PENDING,
        error_type="",
        error="",
        http_status=None,
        not_before=None,
        finished_at=None,
        auto_retries=0,
        interruptions=0,
        manual_retries=F("manual_retries") + 1,
        next_trigger=Trigger.MANUAL,
        **changes,
    )
    for batch_id in batch_ids:
        _reopen(batch_id, per_batch.get(batch_id, retried))
    audit.record_retry(picked, actor, edited=inputs is not None)
    if retried >= BULK_CHANGE:
        transaction.on_commit(refresh_statistics)
    if retried:
        transaction.on_commit(wake_runners)
    return RetryReport(retried=retried, skipped=selected - retried, batches=len(batch_ids))


def _keep_sent_inputs(rows: Any, inputs: dict[str, Any]) -> None:
    """The attempts so far were sent the rows' current inputs: write those on them before an edit replaces them,
    so the history shows what each attempt was sent (an attempt without inputs was sent the row's inputs)."""
    for row_id, sent in rows.values_list("pk", "inputs"):
        if sent != inputs:
            Attempt.objects.filter(execution_id=row_id, inputs__isnull=True).update(inputs=sent)


def retry_failed(
    batch_id: int,
    *,
    execution_ids: list[int] | None = None,
    error_type: str | None = None,
    include_cancelled: bool = False,
    actor: Actor | None = None,
) -> RetryReport:
    executions = Execution.objects.filter(batch_id=batch_id)
    if execution_ids:
        executions = executions.filter(pk__in=execution_ids)
    if error_type:
        executions = executions.filter(Q(error_type=error_type))
    return retry_executions(executions, include_cancelled=include_cancelled, actor=actor)


def retry_execution(execution_id: int, *, inputs: dict[str, Any] | None = None, actor: Actor | None = None) -> None:
    """Retry one failed or cancelled row, with edited inputs if given (the pages' and the admin's "edit and
    retry"); TransitionError if the row is in another state. Convert the inputs first (`typed_inputs`)."""
    report = retry_executions(
        Execution.objects.filter(pk=execution_id), include_cancelled=True, inputs=inputs, actor=actor
    )
    if not report.retried:
        raise TransitionError(f"execution {execution_id} is not failed or cancelled: it cannot be retried")
