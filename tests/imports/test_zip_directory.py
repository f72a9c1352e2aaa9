"""A ZIP's central directory is bounded from its end records before Python's zipfile reads it (issue 27, M1)."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from batches.imports import zip_import
from batches.imports.importers import ImportFileError, parse_file
from tests.xlsxfiles import text_row, write_sheet
from tests.zipforge import forge, small_zip

Forbid = Callable[[], None]
TABLE = {"rows.csv": b"text\nhello\n", "docs/a.pdf": b"%PDF-1.4"}


@pytest.fixture
def unparsed(monkeypatch: pytest.MonkeyPatch) -> Forbid:
    """Once called, zipfile must never parse a directory again (a refused one)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile parsed a directory that should have been refused")

    return lambda: monkeypatch.setattr(zipfile, "ZipFile", refuse)


def refused(path: Path) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(ImportFileError) as caught, zip_import.open_archive(path, None):
        pass
    return str(caught.value), time.monotonic() - started


def test_a_forged_entry_count_is_refused_before_zipfile_reads_the_directory(tmp_path: Path, unparsed: Forbid) -> None:
    source = forge(small_zip(tmp_path / "real.zip", TABLE), tmp_path / "forged.zip", padding=200_000, count=2)

    unparsed()
    message, seconds = refused(source)

    assert message == "the ZIP holds more than 10,000 entries"
    assert seconds < 1


def test_a_zip64_record_declaring_a_huge_directory_is_refused_by_its_numbers(tmp_path: Path, unparsed: Forbid) -> None:
    source = forge(small_zip(tmp_path / "real.zip", TABLE), tmp_path / "forged.zip", count=2, zip64=(2, 2**40))

    unparsed()
    message, seconds = refused(source)

    assert message == (
        "the ZIP's directory is 1,099,511,627,776 bytes, over the 20,480,000 bytes 10,000 entries may take"
    )
    assert seconds < 1


def test_a_zip64_record_declaring_too_many_entries_is_refused(tmp_path: Path, unparsed: Forbid) -> None:
    source = forge(small_zip(tmp_path / "real.zip", TABLE), tmp_path / "forged.zip", count=2, zip64=(10**9, 100))

    unparsed()
    assert refused(source)[0] == "the ZIP holds 1,000,000,000 entries, more than 10,000"


def test_an_honest_zip64_end_record_is_read(tmp_path: Path) -> None:
    real = small_zip(tmp_path / "real.zip", TABLE)
    with zipfile.ZipFile(real) as archive:
        size = archive.start_dir  # the directory starts where the files end
    directory = real.stat().st_size - 22 - size
    source = forge(real, tmp_path / "zip64.zip", count=0xFFFF, zip64=(2, directory))

    with zip_import.open_archive(source, None) as archive:
        assert (archive.table_name, archive.file_count) == ("rows.csv", 1)


def test_the_entry_limit_is_the_setting(tmp_path: Path, settings: object) -> None:
    settings.BATCHES_MAX_ZIP_ENTRIES = 1  # type: ignore[attr-defined]

    assert refused(small_zip(tmp_path / "real.zip", TABLE))[0] == "the ZIP holds 2 entries, more than 1"


def test_an_xlsx_with_a_forged_directory_is_refused_at_once(tmp_path: Path, unparsed: Forbid) -> None:
    sheet = write_sheet(tmp_path / "real.xlsx", [text_row(1, "text"), text_row(2, "hello")])
    source = forge(sheet, tmp_path / "forged.xlsx", padding=200_000, count=5)
    unparsed()
    started = time.monotonic()

    with pytest.raises(ImportFileError, match=r"^the XLSX holds more than 10,000 entries$"):
        parse_file(source)

    assert time.monotonic() - started < 1
