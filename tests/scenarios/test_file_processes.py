"""File inputs with real processes: two clusters share a ZIP batch's files, each file uploaded once in all."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import BatchFile, BatchTask, Execution
from batches.services import imports, workflows
from fakedify.harness import running_fake_dify
from tests.processes import running_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def invoice_zip(path: Path, rows: int, distinct: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "rows.csv", "doc,text\n" + "".join(f"inv/{i % distinct:02d}.pdf,row {i}\n" for i in range(rows))
        )
        for i in range(distinct):
            archive.writestr(f"inv/{i:02d}.pdf", b"%PDF-1.4 " + bytes(50_000))
    return path


def test_two_clusters_upload_each_file_once_and_every_row_sends_its_id(tmp_path, settings):
    settings.BATCHES_FILES_DIR = files_dir = tmp_path / "files"
    env = {"BATCHES_FILES_DIR": str(files_dir), "BATCHES_RUNNERS": "4"}
    with running_fake_dify("--latency-ms", "300", "--variables", "doc:Document:required:file,text") as fake:
        workflow, _ = workflows.save_workflow("files", base_url=fake.url, api_key="app-files")
        options = imports.ImportOptions(concurrency=50, start=True)
        batch = imports.import_batch(workflow, invoice_zip(tmp_path / "invoices.zip", 50, 20), options=options)
        with running_cluster(tmp_path / "a.log", **env), running_cluster(tmp_path / "b.log", **env):
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED, 120)
        stats = fake.stats()

    assert (stats["uploads"]["total"], stats["calls"]) == (20, 50)
    assert set(stats["uploads"]["by_name"].values()) == {1}
    upload_ids = dict(BatchFile.objects.filter(batch=batch).values_list("name", "upload_id"))
    for row in Execution.objects.filter(batch=batch):
        assert row.status == ExecutionStatus.SUCCEEDED
        assert row.outputs["echo"]["doc"]["upload_file_id"] == upload_ids[row.inputs["doc"]["file"]]
