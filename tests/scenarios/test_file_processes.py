"""File inputs with real processes: two clusters share a ZIP batch's files, each file uploaded once in all."""

from __future__ import annotations

import pytest

from batches.choices import BatchStatus
from batches.models import BatchTask
from batches.services import imports, workflows
from fakedify.harness import running_fake_dify
from tests.file_zips import assert_each_file_uploaded_once, invoice_zip
from tests.processes import running_cluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_clusters_upload_each_file_once_and_every_row_sends_its_id(tmp_path, settings):
    settings.BATCHES_FILES_DIR = files_dir = tmp_path / "files"
    env = {"BATCHES_FILES_DIR": str(files_dir), "BATCHES_RUNNERS": "4"}
    with running_fake_dify("--latency-ms", "300", "--variables", "doc:Document:required:file,text") as fake:
        workflow, _ = workflows.save_workflow("files", base_url=fake.url, api_key="app-files")
        options = imports.ImportOptions(concurrency=50, start=True)
        batch = imports.import_batch(workflow, invoice_zip(tmp_path, 50, 20), options=options)
        with running_cluster(tmp_path / "a.log", **env), running_cluster(tmp_path / "b.log", **env):
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED, 120)
        stats = fake.stats()

    assert_each_file_uploaded_once(stats, batch, files=20, rows=50)
