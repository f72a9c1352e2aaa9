"""Run a batch's rows again as a new batch, on the same or another workflow, with its own settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import connection, transaction
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from batches.choices import ExecutionStatus
from batches.dify.types import InputVariable
from batches.imports import files
from batches.imports import mapping as mapping_rules
from batches.imports.inputs import InputError, convert_row
from batches.models import BatchTask, Execution, Workflow
from batches.services import file_uploads
from batches.services.lifecycle import BULK_CHANGE, start_batch
from batches.services.workflows import read_input_variables

logger = logging.getLogger(__name__)
COPIED = ("id", "batch", "index", "inputs", "extra")  # the columns copy_rows writes itself; the others take defaults
NAME_LENGTH = BatchTask._meta.get_field("name").max_length or 200
CHUNK = 2000


class Only:
    ALL = "all"
    FAILED = "failed"
    SELECTED = "selected"
    CHOICES = (ALL, FAILED, SELECTED)


class RerunError(Exception):
    """The rerun cannot be made; the message says why in one line."""


@dataclass(kw_only=True)
class RerunOptions:
    workflow: Workflow | None = None  # None: the source batch's workflow
    only: str = Only.ALL
    execution_ids: list[int] = field(default_factory=list)  # with Only.SELECTED
    name: str = ""
    concurrency: int | None = None  # None: the workflow's default
    max_retries: int | None = None  # None: the source batch's
    start: bool = True
    created_by_id: int | None = None
    mapping: dict[str, str] | None = None  # another workflow: the rows' column → its variable or "" ignored


@dataclass(frozen=True)
class Plan:
    """How rows reach another app: through its column mapping and its own checks, as a New batch's file does."""

    resolved: mapping_rules.Resolved
    variables: list[InputVariable] | None


def rerun_batch(source_id: int, *, options: RerunOptions) -> BatchTask:
    """A new batch with the inputs of the chosen rows of `source_id`, in their order (RerunError if none)."""
    source = BatchTask.objects.select_related("workflow").filter(pk=source_id).first()
    if source is None:
        raise RerunError(f"batch {source_id} does not exist")
    if len(options.name) > NAME_LENGTH:
        raise RerunError(f"the name is longer than {NAME_LENGTH} characters")
    workflow = options.workflow or source.workflow
    rows = chosen_rows(source.pk, options=options)
    plan = _plan(source, workflow, options.mapping)  # network, so before the transaction
    with transaction.atomic():
        batch = BatchTask.objects.create(
            name=options.name or _default_name(source, workflow),
            workflow=workflow,
            source=source,
            source_filename=source.source_filename,
            concurrency=options.concurrency or workflow.concurrency,
            max_retries=source.max_retries if options.max_retries is None else options.max_retries,
            failure_threshold=source.failure_threshold,
            failure_threshold_min_rows=source.failure_threshold_min_rows,
            config=workflow.snapshot(),
            columns=source.columns if plan is None else plan.resolved.columns,
            extra_columns=source.extra_columns if plan is None else [*source.extra_columns, *plan.resolved.ignored],
            created_by_id=options.created_by_id,
        )
        batch.total = (
            copy_rows(rows, batch=batch)
            if plan is None
            else converted_rows(rows, batch=batch, plan=plan, source_id=source.pk)
        )
        # A ZIP batch's files: the same bytes, and the same uploads on the same app.
        file_uploads.copy_files(source.pk, batch_id=batch.pk, same_app=workflow.pk == source.workflow_id)
        if not batch.total:
            raise RerunError(_nothing(options.only))
        batch.save(update_fields=["total"])
        if batch.total >= BULK_CHANGE:
            transaction.on_commit(Execution.refresh_statistics)
        if options.start:
            start_batch(batch.pk)
    logger.info("batch %s runs %s rows of batch %s again on %s", batch.pk, batch.total, source.pk, workflow.name)
    return batch


def chosen_rows(batch_id: int, *, options: RerunOptions) -> QuerySet[Execution]:
    if options.only not in Only.CHOICES:
        raise RerunError(f"--only must be one of {', '.join(Only.CHOICES[:2])}")
    rows = Execution.objects.filter(batch_id=batch_id)
    if options.only == Only.FAILED:
        return rows.filter(status=ExecutionStatus.FAILED)
    if options.only == Only.SELECTED:
        return rows.filter(pk__in=options.execution_ids)
    return rows


def row_count(batch_id: int, *, only: str, execution_ids: list[int]) -> int:
    """How many rows a rerun of these would make (an unknown `only` counts as all rows)."""
    only = only if only in Only.CHOICES else Only.ALL
    return chosen_rows(batch_id, options=RerunOptions(only=only, execution_ids=execution_ids)).count()


def _nothing(only: str) -> str:
    if only == Only.FAILED:
        return "the batch has no failed rows to run again"
    if only == Only.SELECTED:
        return "none of the selected rows belongs to this batch"
    return "the batch has no rows"


def _default_name(source: BatchTask, workflow: Workflow) -> str:
    suffix = f" (again on {workflow.name})" if workflow.pk != source.workflow_id else " (again)"
    return (source.name[: NAME_LENGTH - len(suffix)] + suffix).strip()


def _plan(source: BatchTask, workflow: Workflow, chosen: dict[str, str] | None) -> Plan | None:
    """Another app's checks (unknown columns, required ones, a chat app's query), or None for the same app."""
    if workflow.pk == source.workflow_id and not chosen:
        return None
    variables = read_input_variables(workflow) or None
    try:
        resolved = mapping_rules.resolve(list(source.columns), variables, workflow.mode, chosen)
    except mapping_rules.MappingError as exc:
        raise RerunError(f"workflow {workflow.name}: {exc}") from None
    return Plan(resolved, variables)


def converted_rows(rows: QuerySet[Execution], *, batch: BatchTask, plan: Plan, source_id: int) -> int:
    """The rows through the plan: inputs renamed and converted to what the app declares (its limits, types and
    file rules, as at import), ignored columns kept with the row; RerunError names the first row refused."""
    pairs = list(zip(plan.resolved.header, plan.resolved.targets, strict=True))
    count = 0
    source_rows = rows.order_by("index").values_list("index", "inputs", "extra").iterator(chunk_size=CHUNK)
    with files.archive_scope(file_uploads.BatchFiles(source_id)):  # a ZIP batch's rows name its files
        while chunk := list(islice(source_rows, CHUNK)):
            Execution.objects.bulk_create(
                Execution(batch=batch, index=count + offset, **_converted(index, inputs, extra, pairs, plan))
                for offset, (index, inputs, extra) in enumerate(chunk)
            )
            count += len(chunk)
    return count


def _converted(
    index: int, inputs: dict[str, Any], extra: dict[str, Any], pairs: list[tuple[str, str]], plan: Plan
) -> dict[str, Any]:
    sent = {target: inputs.get(column, "") for column, target in pairs if target}
    kept = {**(extra or {}), **{column: inputs.get(column, "") for column, target in pairs if not target}}
    try:
        sent = convert_row(sent, plan.variables) if plan.variables else sent
    except InputError as exc:
        raise RerunError(f"row {index + 1}: {exc}") from None
    return {"inputs": sent, "extra": kept}


def copy_rows(rows: QuerySet[Execution], *, batch: BatchTask) -> int:
    """INSERT … SELECT of the rows' inputs into `batch`, numbered from 0 in their order; the rest take defaults.

    One statement whatever the size: 100,000 rows never pass through Python.
    """
    ordered = rows.order_by().annotate(row=Window(RowNumber(), order_by=F("index").asc()))
    numbered = ordered.values_list("row", "inputs", "extra")
    select_sql, select_params = numbered.query.sql_with_params()
    fields = {field.name: field for field in Execution._meta.concrete_fields}
    defaults = [field for name, field in fields.items() if name not in COPIED]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(fields[name].column) for name in ("batch", "index", "inputs", "extra"))
    columns += "".join(", " + quote(field.column) for field in defaults)
    sql = (
        f"INSERT INTO {quote(Execution._meta.db_table)} ({columns}) "  # noqa: S608 - names from the model
        f"SELECT %s, src.{quote('row')} - 1, src.{quote(fields['inputs'].column)}, src.{quote(fields['extra'].column)}"
        f"{', %s' * len(defaults)} FROM ({select_sql}) src"
    )
    values = [field.get_db_prep_save(field.get_default(), connection) for field in defaults]
    with connection.cursor() as cursor:
        cursor.execute(sql, [batch.pk, *values, *select_params])
        return cursor.rowcount
