"""Opening a ZIP import (batches.imports.zip_import): the whole archive's compression ratio is bounded, small
entries included (ZIP disk amplification), while a small archive may compress well."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from batches.imports import zip_import
from batches.imports.importers import ImportFileError


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
