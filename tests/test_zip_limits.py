"""ZIP disk amplification (issue 27, L2): the whole archive's compression ratio is bounded, small entries
included, and the files of batches never started are swept after BATCHES_FILES_UNSTARTED_DAYS."""

from __future__ import annotations

import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from batches.choices import BatchStatus
from batches.imports import zip_import
from batches.imports.importers import ImportFileError
from batches.models import BatchFile, BatchTask
from batches.services import file_uploads


def many_small_bombs(path: Path, count: int = 300) -> Path:
    """Entries of 1 MiB of zeros each (at the old per-entry threshold): about 1 KB each compressed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("rows.csv", "doc\n" + "".join(f"f/{i}.pdf\n" for i in range(count)))
        for i in range(count):
            archive.writestr(f"f/{i}.pdf", bytes(1024 * 1024))
    return path


def test_many_small_entries_compressed_a_thousand_times_are_refused_as_a_whole(tmp_path: Path) -> None:
    source = many_small_bombs(tmp_path / "bombs.zip")
    assert source.stat().st_size < 400_000

    with pytest.raises(ImportFileError) as caught, zip_import.open_archive(source, None):
        pass

    assert str(caught.value).startswith("the ZIP unpacks to 300.0 MB from 0.")
    assert str(caught.value).endswith("times (a ZIP bomb?)")


def test_a_small_archive_may_compress_well(tmp_path: Path) -> None:
    source = tmp_path / "small.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rows.csv", "doc\na.pdf\n")
        archive.writestr("a.pdf", bytes(500_000))

    with zip_import.open_archive(source, None) as opened:
        assert opened.file_count == 1


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
