"""A ZIP batch's files and their uploads (batches.services.file_uploads): each file is uploaded once, by one process
at a time, reused by retries, uploaded again when Dify lost it; the files are kept while a batch may run them (Run
again and Compare after the sweep, a rerun whose transaction is still open when the sweep runs), and the files of
batches never started are swept after BATCHES_FILES_UNSTARTED_DAYS."""

from __future__ import annotations

import threading
import zipfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.types import InputVariable
from batches.models import Attempt, BatchFile, BatchTask, Execution, Workflow
from batches.runner.worker import Runner
from batches.selectors.compare import ONLY_A, ONLY_B, compare
from batches.services import file_uploads, imports, lifecycle, rerun
from tests.file_zips import NO_START, assert_each_file_uploaded_once, invoice_zip, left_on_disk

pytestmark = pytest.mark.usefixtures("files_dir")


def invoices(tmp_path: Path, rows: int = 4) -> Path:
    path = tmp_path / "invoices.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rows.csv", "doc,text\n" + "".join(f"inv/{i % 2}.pdf,row {i}\n" for i in range(rows)))
        for i in range(2):
            archive.writestr(f"inv/{i}.pdf", b"%PDF-1.4 " + bytes([i]) * 50)
    return path


def kept_on_disk(batch: BatchTask, files_dir: Path) -> list[bool]:
    stored = BatchFile.objects.filter(batch=batch).values_list("stored", flat=True)
    return [bool(item) and (files_dir / item).is_file() for item in stored]


@pytest.mark.parametrize("other_app", [False, True])
def test_a_zip_batch_runs_again_and_compares_after_the_sweep_ran(make_workflow, fake, tmp_path, files_dir, other_app):
    fake.restore()
    workflow = make_workflow(base_url=fake.url, response_mode="blocking")
    source = imports.import_batch(workflow, invoices(tmp_path))
    Runner().run(seconds=20)
    assert BatchTask.objects.get(pk=source.pk).status == BatchStatus.FINISHED

    file_uploads.sweep_files()
    target = make_workflow(base_url=fake.url, response_mode="blocking") if other_app else None
    again = rerun.rerun_batch(source.pk, options=rerun.RerunOptions(workflow=target))
    Runner().run(seconds=20)

    assert set(Execution.objects.filter(batch=again).values_list("status", flat=True)) == {ExecutionStatus.SUCCEEDED}
    result = compare(source, again)
    assert sum(result.counts.values()) == 4 and result.counts[ONLY_A] == result.counts[ONLY_B] == 0
    assert all(kept_on_disk(again, files_dir))


@pytest.mark.django_db(transaction=True)
def test_a_rerun_still_in_its_transaction_keeps_its_files_from_the_sweep(
    make_workflow, tmp_path, files_dir, monkeypatch, settings
):
    settings.BATCHES_FILES_UNSTARTED_DAYS = 60  # the rerun is not started: its own window must outlast the 30 days
    variables = [InputVariable("doc", "doc", required=True, type="file"), InputVariable("text", "text")]
    monkeypatch.setattr(imports, "read_input_variables", lambda workflow, config=None: variables)
    workflow = make_workflow()
    source = imports.import_batch(workflow, invoices(tmp_path), options=imports.ImportOptions(start=False))
    BatchTask.objects.filter(pk=source.pk).update(status=BatchStatus.FINISHED, finished_at=timezone.now())
    copied, go, swept = threading.Event(), threading.Event(), []
    real_copy = file_uploads.copy_files

    def copy_then_wait(*args, **kwargs):
        real_copy(*args, **kwargs)
        copied.set()
        go.wait(10)  # the rerun's transaction stays open while the sweep runs

    def rerun_in_thread():
        try:
            rerun.rerun_batch(source.pk, options=rerun.RerunOptions(start=False))
        finally:
            connection.close()

    def sweep_in_thread():
        try:
            swept.append(file_uploads.sweep_files(now=timezone.now() + timedelta(days=30)))
        finally:
            connection.close()

    monkeypatch.setattr(file_uploads, "copy_files", copy_then_wait)
    threads = [threading.Thread(target=rerun_in_thread), threading.Thread(target=sweep_in_thread)]
    threads[0].start()
    assert copied.wait(10)
    threads[1].start()
    threads[1].join(1.0)  # the sweep waits for the rerun's lock (or, on old code, deletes at once)
    go.set()
    for thread in threads:
        thread.join(30)

    again = BatchTask.objects.exclude(pk=source.pk).get()
    assert swept == [0]
    assert kept_on_disk(again, files_dir) == [True, True]


def test_a_zip_of_50_rows_naming_20_files_uploads_each_file_once(workflow, fake, tmp_path):
    # All 50 at once: rows naming the same file are in flight together and share its one upload.
    batch = imports.import_batch(workflow, invoice_zip(tmp_path), options=imports.ImportOptions(concurrency=50))

    Runner().run(seconds=60)

    stats = fake.stats()
    assert_each_file_uploaded_once(stats, batch, files=20, rows=50)


def test_a_row_retried_by_hand_reuses_its_upload(workflow, fake, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=4, distinct=2))
    Runner().run(seconds=30)
    row = Execution.objects.get(batch=batch, index=0)
    Execution.objects.filter(pk=row.pk).update(status=ExecutionStatus.FAILED)

    lifecycle.retry_executions(Execution.objects.filter(pk=row.pk))
    Runner().run(seconds=30)

    assert fake.stats()["uploads"]["total"] == 2
    row.refresh_from_db()
    assert (row.status, row.attempt_count) == (ExecutionStatus.SUCCEEDED, 2)


def test_a_transient_upload_failure_is_retried_like_a_call(workflow, fake, tmp_path, settings):
    settings.BATCHES_BACKOFF_BASE = 0.05
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1))
    fake.fail_uploads(1, 503)

    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch)
    outcomes = list(Attempt.objects.filter(execution=row).values_list("outcome", "error_type", "http_status"))
    assert outcomes == [("failed", "upstream_error", 503), ("succeeded", "", 200)]
    assert "upload of 'invoices/00.pdf'" in Attempt.objects.filter(execution=row).first().error
    assert fake.stats()["uploads"] == {**fake.stats()["uploads"], "total": 1, "failed": 1}


def test_an_upload_dify_lost_is_uploaded_again_once(workflow, fake, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=6, distinct=2))
    Runner().run(seconds=30)
    fake.expire_uploads()
    # Failed before any run started: a known run would be looked up (and its success recorded) instead of called.
    Execution.objects.filter(batch=batch).update(status=ExecutionStatus.FAILED, workflow_run_id="")

    lifecycle.retry_executions(Execution.objects.filter(batch=batch))
    Runner().run(seconds=30)

    assert Counter(fake.stats()["uploads"]["by_name"].values()) == Counter({2: 2})
    assert set(Execution.objects.filter(batch=batch).values_list("status", flat=True)) == {ExecutionStatus.SUCCEEDED}
    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED


def test_one_process_uploads_a_file_while_the_others_wait_until_its_lease_expires(workflow, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1), options=NO_START)

    first = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:a", lease_seconds=60, user="u")
    second = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:b", lease_seconds=60, user="u")
    BatchFile.objects.update(upload_until=timezone.now() - timedelta(seconds=1))
    after_expiry = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:b", lease_seconds=60, user="u")
    file_uploads.store(after_expiry.file_id, upload_id="up-1", user="u")

    assert (first.mine, second.mine, after_expiry.mine) == (True, False, True)
    again = file_uploads.take(batch.pk, "invoices/00.pdf", owner="node:a", lease_seconds=60, user="u")
    assert again.upload_id == "up-1"
    assert file_uploads.take(batch.pk, "missing.pdf", owner="node:a", lease_seconds=60, user="u").file_id is None


def test_files_are_kept_for_the_retention_window_after_their_batch_ended_and_their_upload_ids_kept(
    workflow, tmp_path, files_dir
):
    done = imports.import_batch(workflow, invoice_zip(tmp_path, rows=2, distinct=2), options=NO_START)
    (tmp_path / "second").mkdir()
    failed = imports.import_batch(workflow, invoice_zip(tmp_path / "second", rows=2, distinct=2), options=NO_START)
    finished = {"status": BatchStatus.FINISHED, "finished_at": timezone.now()}
    BatchTask.objects.filter(pk__in=[done.pk, failed.pk]).update(**finished)
    Execution.objects.filter(batch=done).update(status=ExecutionStatus.SUCCEEDED)
    Execution.objects.filter(batch=failed, index=0).update(status=ExecutionStatus.FAILED)
    BatchFile.objects.update(upload_id="kept")

    assert file_uploads.sweep_files() == 0  # any ended batch may be run again, or its failed rows retried
    assert file_uploads.sweep_files(now=timezone.now() + timedelta(days=8)) == 4
    assert set(BatchFile.objects.values_list("stored", "upload_id")) == {("", "kept")}
    assert left_on_disk(files_dir) == []


def test_an_upload_takes_a_token_of_the_workflows_rpm_bucket(workflow):
    Workflow.objects.filter(pk=workflow.pk).update(rpm_limit=60)  # a new bucket holds one second's worth: 1

    assert file_uploads.upload_token(workflow.pk) is True
    assert file_uploads.upload_token(workflow.pk) is False
    Workflow.objects.filter(pk=workflow.pk).update(rpm_limit=None)
    assert file_uploads.upload_token(workflow.pk) is True


def test_a_zip_batch_run_again_uploads_under_its_own_user_and_keeps_the_files_it_needs(workflow, fake, tmp_path):
    source = imports.import_batch(workflow, invoice_zip(tmp_path, rows=4, distinct=2))
    Runner().run(seconds=30)

    assert file_uploads.sweep_files() == 0
    again = rerun.rerun_batch(source.pk, options=rerun.RerunOptions(only="all"))
    Runner().run(seconds=30)

    assert fake.stats()["uploads"]["total"] == 4  # each batch is its own Dify user (BATCHES_UPLOAD_SHARED_USER off)
    assert set(Execution.objects.filter(batch=again).values_list("status", flat=True)) == {ExecutionStatus.SUCCEEDED}
    assert file_uploads.sweep_files(now=timezone.now() + timedelta(days=8)) == 4


def test_a_file_dify_refuses_fails_its_row_at_once_naming_the_file(workflow, fake, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1))
    fake.fail_uploads(1, 413)

    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch)
    assert (row.status, row.error_type, row.http_status, row.attempt_count) == ("failed", "invalid_input", 413, 1)
    assert row.error == "upload of 'invoices/00.pdf': HTTP 413 file_too_large: File size exceeded. {message}"


@pytest.mark.parametrize(("recheck_minutes", "uploads_made"), [(0, 2), (60, 1)])
def test_a_silent_stream_makes_the_retry_upload_an_old_file_again(
    make_workflow, fake, tmp_path, settings, recheck_minutes, uploads_made
):
    # Dify answers a lost upload in streaming mode with silence (dify-real case 07): the call times out.
    settings.BATCHES_BACKOFF_BASE = 0.05
    settings.BATCHES_UPLOAD_RECHECK_MINUTES = recheck_minutes  # 0: every upload counts as old
    fake.restore()
    workflow = make_workflow(base_url=fake.url, response_mode="streaming", timeout=1)
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1), options=NO_START)
    Execution.objects.filter(batch=batch).update(inputs={**Execution.objects.get(batch=batch).inputs, "_fault": "hang"})

    lifecycle.start_batch(batch.pk)
    Runner().run(seconds=30)

    row = Execution.objects.get(batch=batch)
    assert list(Attempt.objects.filter(execution=row).values_list("error_type", flat=True)) == ["timeout"] * 3
    assert fake.stats()["uploads"]["by_name"] == {"00.pdf": uploads_made}


def test_a_recent_upload_is_kept_after_a_silent_stream(workflow, tmp_path):
    batch = imports.import_batch(workflow, invoice_zip(tmp_path, rows=1, distinct=1), options=NO_START)
    file_uploads.store(BatchFile.objects.get(batch=batch).pk, upload_id="up-1", user="u")
    file_id = BatchFile.objects.get(batch=batch).pk

    assert file_uploads.forget(file_id, upload_id="up-1", older_only=True) is False
    assert file_uploads.forget(file_id, upload_id="up-1") is True
    assert BatchFile.objects.get(pk=file_id).upload_id == ""


@pytest.fixture
def kept_file(settings: Any, tmp_path: Path, make_batch: Any) -> Any:
    settings.BATCHES_FILES_DIR = tmp_path / "files"

    def make(**fields: Any) -> tuple[BatchTask, Path]:
        batch = make_batch(rows=1, **fields)
        folder = tmp_path / "files" / f"import-{batch.pk}"
        folder.mkdir(parents=True)
        (folder / "000001").write_bytes(b"%PDF")
        BatchFile.objects.create(batch=batch, name="a.pdf", size=4, stored=f"import-{batch.pk}/000001")
        return batch, folder / "000001"

    return make


def test_files_of_a_batch_never_started_are_swept_after_the_setting(kept_file: Any, settings: Any) -> None:
    settings.BATCHES_FILES_UNSTARTED_DAYS = 3
    old, old_path = kept_file(status=BatchStatus.PENDING)
    BatchTask.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=4))
    recent, recent_path = kept_file(status=BatchStatus.PENDING)

    removed = file_uploads.sweep_files()

    assert removed == 1
    assert not old_path.exists() and recent_path.exists()
    assert BatchFile.objects.get(batch=old).stored == ""


def test_files_of_a_started_batch_are_not_swept_as_unstarted(kept_file: Any, settings: Any) -> None:
    settings.BATCHES_FILES_UNSTARTED_DAYS = 3
    paused, path = kept_file(status=BatchStatus.PAUSED, started_at=timezone.now() - timedelta(days=5))
    BatchTask.objects.filter(pk=paused.pk).update(created_at=timezone.now() - timedelta(days=5))

    assert file_uploads.sweep_files() == 0
    assert path.exists()
