"""The files of ZIP batches are kept while a batch may run them (issue 29): Run again and Compare after the sweep,
and a rerun whose transaction is still open when the sweep runs."""

from __future__ import annotations

import threading
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.types import InputVariable
from batches.models import BatchFile, BatchTask, Execution
from batches.runner.worker import Runner
from batches.selectors.compare import ONLY_A, ONLY_B, compare
from batches.services import file_uploads, imports, rerun
from fakedify.harness import running_fake_dify


@pytest.fixture(scope="module")
def fake():
    with running_fake_dify("--variables", "doc:Document:required:file,text:Text") as server:
        yield server


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path):
    settings.BATCHES_FILES_DIR = tmp_path / "files"
    return settings.BATCHES_FILES_DIR


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
