"""Batch transitions requested by people: the transition table, cancel and manual retry."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from batches.choices import BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.dify.types import CallResult
from batches.imports import inputs
from batches.models import Attempt, BatchTask, Execution
from batches.services import claims, imports, lifecycle, results, workflows
from batches.services.transitions import TransitionError
from tests.file_zips import DOC, NO_START, invoice_zip

S = BatchStatus
TRANSITIONS = [
    # (operation, from state, allowed, resulting state)
    ("start", S.PENDING, True, S.RUNNING),
    ("start", S.RUNNING, False, S.RUNNING),
    ("start", S.PAUSED, False, S.PAUSED),
    ("start", S.FINISHED, False, S.FINISHED),
    ("start", S.CANCELLED, False, S.CANCELLED),
    ("pause", S.PENDING, False, S.PENDING),
    ("pause", S.RUNNING, True, S.PAUSED),
    ("pause", S.PAUSED, False, S.PAUSED),
    ("pause", S.FINISHED, False, S.FINISHED),
    ("pause", S.CANCELLED, False, S.CANCELLED),
    ("resume", S.PENDING, False, S.PENDING),
    ("resume", S.RUNNING, False, S.RUNNING),
    ("resume", S.PAUSED, True, S.RUNNING),
    ("resume", S.FINISHED, False, S.FINISHED),
    ("resume", S.CANCELLED, False, S.CANCELLED),
    ("cancel", S.PENDING, True, S.CANCELLED),
    ("cancel", S.RUNNING, True, S.CANCELLED),
    ("cancel", S.PAUSED, True, S.CANCELLED),
    ("cancel", S.FINISHED, False, S.FINISHED),
    ("cancel", S.CANCELLED, False, S.CANCELLED),
]


@pytest.mark.parametrize(("operation", "before", "allowed", "after"), TRANSITIONS)
def test_batch_transition_table(make_batch, operation, before, allowed, after):
    batch = make_batch(rows=2, status=before)
    service = getattr(lifecycle, f"{operation}_batch")

    if allowed:
        service(batch.pk)
    else:
        with pytest.raises(TransitionError, match=f"batch {batch.pk} is"):
            service(batch.pk)

    batch.refresh_from_db()
    assert batch.status == after


def test_start_records_the_start_time(make_batch):
    batch = make_batch()

    lifecycle.start_batch(batch.pk)

    batch.refresh_from_db()
    assert batch.started_at is not None


def test_cancel_cancels_unfinished_rows_and_fences_calls_in_flight(make_batch):
    batch = make_batch(rows=3, status=BatchStatus.RUNNING, concurrency=1)
    (claim,) = claims.claim(batch.pk, owner="runner-a", limit=1)
    Execution.objects.filter(index=2).update(status=ExecutionStatus.SUCCEEDED)

    cancelled = lifecycle.cancel_batch(batch.pk)

    assert cancelled == 2
    statuses = dict(Execution.objects.values_list("index", "status"))
    assert statuses == {0: "cancelled", 1: "cancelled", 2: "succeeded"}
    assert Attempt.objects.get().outcome == Attempt.Outcome.CANCELLED
    assert results.record_results([(claim, CallResult(ok=True, outputs={}))]).discarded == 1


def test_retry_failed_sends_failed_rows_back_as_manual_and_reopens_a_finished_batch(make_batch):
    batch = make_batch(rows=3, status=BatchStatus.FINISHED)
    Execution.objects.filter(index__in=[0, 1]).update(
        status=ExecutionStatus.FAILED, error_type=ErrorType.TIMEOUT, error="slow", auto_retries=2
    )

    report = lifecycle.retry_failed(batch.pk)

    assert report.retried == 2
    row = Execution.objects.get(index=0)
    assert (row.status, row.error, row.auto_retries, row.manual_retries) == ("pending", "", 0, 1)
    assert row.next_trigger == Trigger.MANUAL
    batch.refresh_from_db()
    assert (batch.status, batch.finished_at) == (BatchStatus.RUNNING, None)


def test_retry_failed_can_take_one_error_type(make_batch):
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    Execution.objects.filter(index=0).update(status=ExecutionStatus.FAILED, error_type=ErrorType.TIMEOUT)
    Execution.objects.filter(index=1).update(status=ExecutionStatus.FAILED, error_type=ErrorType.AUTH)

    report = lifecycle.retry_failed(batch.pk, error_type=ErrorType.AUTH)

    assert report.retried == 1
    assert Execution.objects.get(index=1).status == ExecutionStatus.PENDING


@pytest.mark.parametrize(
    ("status", "include_cancelled", "retried"),
    [
        (ExecutionStatus.FAILED, False, 1),
        (ExecutionStatus.CANCELLED, False, 0),
        (ExecutionStatus.CANCELLED, True, 1),
        (ExecutionStatus.SUCCEEDED, True, 0),
        (ExecutionStatus.PENDING, True, 0),
        (ExecutionStatus.RUNNING, True, 0),
    ],
)
def test_retry_takes_only_failed_or_cancelled_rows(make_batch, status, include_cancelled, retried):
    make_batch(rows=1, status=BatchStatus.FINISHED)
    Execution.objects.update(status=status)

    report = lifecycle.retry_executions(Execution.objects.all(), include_cancelled=include_cancelled)

    assert (report.retried, report.skipped) == (retried, 1 - retried)


def test_retry_with_edited_inputs_stores_them(make_batch):
    make_batch(rows=1, status=BatchStatus.FINISHED)
    Execution.objects.update(status=ExecutionStatus.FAILED)

    lifecycle.retry_executions(Execution.objects.all(), inputs={"text": "fixed"})

    assert Execution.objects.get().inputs == {"text": "fixed"}


@pytest.mark.parametrize(
    ("error_type", "inputs", "looked_up"),
    [
        ("timeout", None, "run-1"),
        ("connection", None, "run-1"),  # its look-up was refused
        ("timeout", {"text": "fixed"}, ""),
        ("workflow_failed", None, ""),  # seen to fail, or stopped in Dify (which says `running` for ever)
        ("cancelled", None, ""),
    ],
    ids=["timeout", "refused_look_up", "edited_inputs", "run_failed", "cancelled"],
)
def test_a_manual_retry_looks_the_earlier_run_up_unless_its_end_was_seen_or_the_inputs_changed(
    make_batch, error_type, inputs, looked_up
):
    """The earlier run may have succeeded inside Dify; with edited inputs its answer is not this row's any more."""
    batch = make_batch(rows=1, status=BatchStatus.FINISHED)
    Execution.objects.update(status=ExecutionStatus.FAILED, error_type=error_type, workflow_run_id="run-1")

    lifecycle.retry_executions(Execution.objects.all(), include_cancelled=True, inputs=inputs)

    (claim,) = claims.claim(batch.pk, owner="runner-a", limit=1)
    assert claim.resume_run_id == looked_up


@pytest.mark.parametrize("status", [ExecutionStatus.FAILED, ExecutionStatus.CANCELLED])
def test_retry_execution_retries_one_row_with_its_edited_inputs_and_reopens_the_batch(make_batch, status):
    batch = make_batch(rows=2, status=BatchStatus.CANCELLED)
    Execution.objects.update(status=status)
    row = Execution.objects.get(index=0)

    lifecycle.retry_execution(row.pk, inputs={"text": "fixed"})

    row.refresh_from_db()
    assert (row.status, row.inputs, row.manual_retries) == (ExecutionStatus.PENDING, {"text": "fixed"}, 1)
    assert Execution.objects.get(index=1).status == status
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING


@pytest.mark.parametrize("status", [ExecutionStatus.SUCCEEDED, ExecutionStatus.PENDING, ExecutionStatus.RUNNING])
def test_retry_execution_of_a_row_that_is_not_failed_or_cancelled_raises_and_changes_nothing(make_batch, status):
    batch = make_batch(rows=1, status=BatchStatus.FINISHED)
    Execution.objects.update(status=status)
    row = Execution.objects.get()

    with pytest.raises(TransitionError, match=f"execution {row.pk} is not failed or cancelled"):
        lifecycle.retry_execution(row.pk, inputs={"text": "fixed"})

    row.refresh_from_db()
    assert (row.status, row.inputs) == (status, {"text": "row 0"})
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_options_of_the_services_are_keyword_only(make_batch):
    batch = make_batch(status=BatchStatus.RUNNING)

    with pytest.raises(TypeError):
        lifecycle.set_concurrency(batch.pk, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        lifecycle.pause_batch(batch.pk, "why")  # type: ignore[misc]


def test_save_workflow_creates_then_updates_only_given_fields(db):
    workflows.save_workflow("wf", base_url="http://127.0.0.1:1/v1", api_key="k1", concurrency=3)

    workflow, created = workflows.save_workflow("wf", api_key="k2", concurrency=None)

    assert not created
    assert (workflow.api_key, workflow.concurrency, workflow.base_url) == ("k2", 3, "http://127.0.0.1:1/v1")


@pytest.mark.parametrize(
    ("status", "changed"),
    [(S.PENDING, True), (S.RUNNING, True), (S.PAUSED, True), (S.FINISHED, False), (S.CANCELLED, False)],
)
def test_concurrency_changes_while_the_batch_is_not_over(make_batch, status, changed):
    batch = make_batch(status=status, concurrency=5)

    if changed:
        lifecycle.set_concurrency(batch.pk, concurrency=9)
    else:
        with pytest.raises(TransitionError):
            lifecycle.set_concurrency(batch.pk, concurrency=9)

    batch.refresh_from_db()
    assert batch.concurrency == (9 if changed else 5)


def test_a_running_batch_claims_up_to_its_new_concurrency(make_batch):
    batch = make_batch(rows=6, status=S.RUNNING, concurrency=2)
    claims.claim(batch.pk, owner="runner-a", limit=10)

    lifecycle.set_concurrency(batch.pk, concurrency=5)

    assert len(claims.claim(batch.pk, owner="runner-a", limit=10)) == 3


def test_retry_all_failures_is_a_handful_of_queries_whatever_the_size(make_batch, django_assert_max_num_queries):
    batch = make_batch(rows=2000, status=S.FINISHED)
    Execution.objects.update(status=ExecutionStatus.FAILED, error_type=ErrorType.TIMEOUT)

    with django_assert_max_num_queries(10):  # 8, and the audit entry: the rows it names and its INSERT
        report = lifecycle.retry_failed(batch.pk)

    assert report.retried == 2000


def planner_row_count() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [Execution._meta.db_table])
        return float(cursor.fetchone()[0])


def import_rows(workflow, path, rows):
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(rows)), encoding="utf-8")
    imports.import_batch(workflow, path, options=imports.ImportOptions(start=False))


def fail_and_retry_all(workflow, rows):
    batch = BatchTask.objects.create(name="b", workflow=workflow, config=workflow.snapshot(), total=rows)
    Execution.objects.bulk_create(Execution(batch=batch, index=i, status=ExecutionStatus.FAILED) for i in range(rows))
    lifecycle.retry_failed(batch.pk)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's statistics are PostgreSQL's")
@pytest.mark.parametrize("bulk_change", ["import", "retry"])
def test_bulk_changes_refresh_the_planners_statistics(
    make_workflow, tmp_path, bulk_change, django_capture_on_commit_callbacks
):
    # Stale statistics make every claim sort all pending rows of a new batch (see refresh_statistics).
    with django_capture_on_commit_callbacks(execute=True):
        if bulk_change == "import":
            import_rows(make_workflow(), tmp_path / "rows.csv", lifecycle.BULK_CHANGE)
        else:
            fail_and_retry_all(make_workflow(), lifecycle.BULK_CHANGE)

    assert planner_row_count() == lifecycle.BULK_CHANGE


def test_import_stores_every_row_exactly_as_written(make_workflow, tmp_path):
    # On PostgreSQL the rows go in through COPY: escapes, unicode, nesting and key order must survive it.
    rows = [
        {"z": "你好 🌍", "a": {"tags": ["x", None], "deep": {"k": 1.5}}, "n": 3, "ok": True},
        {"z": 'quote " back\\slash \\N tab \t newline \n', "a": [], "n": -2.25, "ok": None},
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")

    batch = imports.import_batch(make_workflow(), source, options=imports.ImportOptions(start=False))

    stored = list(Execution.objects.filter(batch=batch).order_by("index").values_list("index", "inputs", "status"))
    assert stored == [(0, rows[0], ExecutionStatus.PENDING), (1, rows[1], ExecutionStatus.PENDING)]
    assert [list(inputs) for _, inputs, _ in stored] == [["z", "a", "n", "ok"]] * 2


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's single writer")
def test_an_import_reads_the_whole_file_before_it_takes_sqlites_write_lock(make_workflow, tmp_path):
    from django.test.utils import CaptureQueriesContext

    from batches.imports.importers import ImportFileError

    workflow = make_workflow()
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "a"}\n' * 3000 + "{broken\n", encoding="utf-8")

    with CaptureQueriesContext(connection) as queries, pytest.raises(ImportFileError):
        imports.import_batch(workflow, source, options=imports.ImportOptions(start=False))

    assert not [query["sql"] for query in queries.captured_queries if "INSERT" in query["sql"]]


def test_an_import_on_either_database_stores_its_rows_with_their_defaults(make_workflow, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("text\n" + "".join(f"row {i}\n" for i in range(4500)), encoding="utf-8")

    batch = imports.import_batch(make_workflow(), source, options=imports.ImportOptions(start=False))

    rows = Execution.objects.filter(batch=batch)
    assert (batch.total, rows.count(), rows.pending().count()) == (4500, 4500, 4500)
    assert rows.get(index=4499).inputs == {"text": "row 4499"}
    assert (rows.get(index=0).attempt_count, rows.get(index=0).next_trigger) == (0, Trigger.AUTO)


@pytest.mark.usefixtures("files_dir")
def test_edited_inputs_of_a_manual_retry_may_name_the_batchs_files_and_no_others(workflow, tmp_path, monkeypatch):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=2, distinct=2), options=NO_START)
    row = Execution.objects.get(batch=batch, index=0)
    monkeypatch.setattr(lifecycle, "read_input_variables", lambda workflow, config=None: [DOC])
    other = {"type": "document", "transfer_method": "local_file", "file": "invoices/01.pdf"}

    assert lifecycle.typed_inputs(row, edited={"doc": other}) == {"doc": other}
    assert lifecycle.typed_inputs(row, edited={"doc": "invoices/00.pdf"})["doc"]["file"] == "invoices/00.pdf"
    with pytest.raises(inputs.InputError, match="names 'invoices/99.pdf', which is not one of the batch's files"):
        lifecycle.typed_inputs(row, edited={"doc": "invoices/99.pdf"})
