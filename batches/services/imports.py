"""Creating a batch from a file: the whole table or nothing (ImportFileError names the line), started if asked.

A ZIP's table is imported the same way, its files kept with the batch in the batch's own transaction
(`file_imports`). The rows go in by PostgreSQL's COPY, or on SQLite as statements prepared before the write lock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from batches.imports import importers
from batches.imports.importers import Record
from batches.models import BatchTask, Execution, Workflow
from batches.services import file_imports
from batches.services.audit import Actor
from batches.services.lifecycle import start_batch
from batches.services.workflows import read_input_variables

logger = logging.getLogger(__name__)
IMPORT_CHUNK = 2000
INPUTS_FIELD = Execution._meta.get_field("inputs")
EXTRA_FIELD = Execution._meta.get_field("extra")


@dataclasses.dataclass(kw_only=True)
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
    if not file_imports.is_zip(filename):
        return import_table(workflow, path, filename=filename, options=options, on_progress=on_progress)
    # The table and the files it names (issue 15): the batch is named after the ZIP, not its table.
    options = dataclasses.replace(options, name=options.name or Path(filename).stem)
    with file_imports.archive_import(path, filename) as (table, keep_files):
        return import_table(
            workflow, table.path, filename=table.filename, options=options, on_progress=on_progress, then=keep_files
        )


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
        transaction.on_commit(Execution.refresh_statistics)  # before the runners' wake-up
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
    fields = _row_fields()
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
