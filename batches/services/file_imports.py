"""A ZIP that holds the table and the files its cells name, for a preview or an import: all of it, or nothing
(design.md guarantee 6).

The table is unpacked to a temporary folder and imported as any table (`imports`); each file a cell names is
checked and unpacked once, into a folder of this import under BATCHES_FILES_DIR, and gets a BatchFile row (its bytes
stay on disk). Anything refused removes that folder and creates no row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from batches.conf import settings
from batches.imports import files, zip_import
from batches.imports.importers import ImportFileError
from batches.models import BatchFile, BatchTask


@dataclasses.dataclass
class Table:
    path: Path
    filename: str
    archive: zip_import.Archive | None = None


def is_zip(filename: str) -> bool:
    return Path(filename).suffix.lower() == ".zip"


@contextlib.contextmanager
def opened_table(path: str | Path, filename: str, folder: Path | None = None) -> Iterator[Table]:
    """The upload's table; for a ZIP, unpacked, with its files in scope for the rows read inside this block.

    `folder`: where the named files are unpacked (an import); None only checks that the ZIP holds them (a preview).
    """
    if not is_zip(filename):
        yield Table(Path(path), filename)
        return
    with (
        tempfile.TemporaryDirectory(prefix="batches-zip-") as temporary,
        zip_import.open_archive(Path(path), folder) as archive,
    ):
        table = Table(archive.extract_table(Path(temporary)), archive.table_name, archive)
        with files.archive_scope(archive):
            yield table


@contextlib.contextmanager
def archive_import(path: str | Path, filename: str) -> Iterator[tuple[Table, Callable[[BatchTask], None]]]:
    """A ZIP's table, unpacked for an import, and what keeps its files with the batch (call it in the batch's
    transaction: `imports.import_table`'s `then`). Anything raised inside this block removes the unpacked files."""
    folder = Path(settings.BATCHES_FILES_DIR) / f"import-{uuid.uuid4().hex}"
    try:
        with opened_table(path, filename, folder) as table:
            archive = table.archive
            assert archive is not None
            yield table, lambda batch: _keep_files(batch, archive, filename)
    except BaseException:
        zip_import.remove_folder(folder)
        raise


def _keep_files(batch: BatchTask, archive: zip_import.Archive, filename: str) -> None:
    if archive.file_count and not archive.taken:
        raise ImportFileError(
            "no cell names a file of the ZIP: the app declares no file variable, or did not answer /parameters"
        )
    BatchFile.objects.bulk_create(
        BatchFile(batch=batch, name=name, size=taken.size, stored=taken.stored) for name, taken in archive.taken.items()
    )
    BatchTask.objects.filter(pk=batch.pk).update(source_filename=filename[:255])
    batch.source_filename = filename[:255]
