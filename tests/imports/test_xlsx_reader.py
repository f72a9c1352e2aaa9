"""Hostile and ordinary XLSX files: bounded reading, zip bombs refused from the archive's directory, any file name."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from batches.imports import xlsx_reader
from batches.imports.importers import ImportFileError, parse_file
from tests.imports.hostile import SHEET, VALID_XLSX_MEMBERS, rows_or_error, zip_bytes
from tests.xlsxfiles import styled_empty_rows, text_row, write_sheet

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:openpyxl")


def rows_of(path: Path, **options: Any) -> list[dict[str, Any]]:
    return list(parse_file(path, **options).rows)


def error_of(path: Path, **options: Any) -> str:
    with pytest.raises(ImportFileError) as caught:
        rows_of(path, **options)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_an_xlsx_stored_without_its_extension_is_read_by_the_name_given(tmp_path: Path) -> None:
    """The web upload keeps the file under a random token; the original name says it is XLSX."""
    source = write_sheet(tmp_path / "in.xlsx", [text_row(1, "text"), text_row(2, "hello")])
    stored = tmp_path / "0123456789abcdef"
    shutil.copy(source, stored)

    assert rows_of(stored, filename="rows.xlsx") == [{"text": "hello"}]


def test_a_few_styled_empty_rows_after_the_data_are_ignored(tmp_path: Path) -> None:
    rows = [text_row(1, "text"), text_row(2, "a"), *styled_empty_rows(3, 50)]

    assert rows_of(write_sheet(tmp_path / "in.xlsx", rows)) == [{"text": "a"}]


def test_endless_styled_empty_rows_are_refused_once_past_the_cap(tmp_path: Path) -> None:
    rows = [text_row(1, "text"), text_row(2, "a"), *styled_empty_rows(3, 5000)]

    assert error_of(write_sheet(tmp_path / "in.xlsx", rows)) == (
        "row 1003: more than 1000 blank rows in a row; delete the empty (perhaps only formatted) rows"
    )


def test_a_gap_in_the_row_numbers_costs_one_blank_row(tmp_path: Path) -> None:
    rows = [text_row(1, "text"), text_row(2, "a"), text_row(1_048_576, "far away")]

    assert error_of(write_sheet(tmp_path / "in.xlsx", rows)).startswith(
        "row 3: blank row between data rows (only trailing ones are allowed)"
    )


def test_an_xlsx_bomb_is_refused_at_once_from_its_declared_sizes(tmp_path: Path) -> None:
    """A 2 MB file whose sheet inflates to 400 MB: the directory says so, nothing is inflated."""
    padding = b" " * (1024 * 1024)
    path = write_sheet(tmp_path / "bomb.xlsx", [text_row(1, "text"), text_row(2, "a"), *([padding] * 400)])
    assert path.stat().st_size < 2_500_000

    assert error_of(path).startswith("the XLSX file unpacks to 400.0 MB, over the 128.0 MB limit")


def test_the_sheet_is_counted_while_it_is_read_too(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "in.xlsx", [text_row(n, "x" * 100) for n in range(1, 2000)])

    with pytest.raises(xlsx_reader.XlsxError, match="the sheet unpacks to more than 0.1 MB"):
        list(xlsx_reader.records(path, max_unpacked=100 * 1024, max_blank_rows=10))


def test_a_row_with_too_many_parts_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx_reader, "MAX_HELD_ELEMENTS", 50)
    path = write_sheet(tmp_path / "in.xlsx", [text_row(1, "text"), text_row(2, *(["a"] * 20))])

    assert error_of(path) == "a row of the sheet holds more than 50 XML elements"


def test_a_formula_without_a_saved_value_is_refused_naming_its_cell(tmp_path: Path) -> None:
    formula = b'<row r="2"><c r="A2"><f>CONCAT("a","b")</f></c></row>'

    error = error_of(write_sheet(tmp_path / "in.xlsx", [text_row(1, "text"), formula]))

    assert "row 2" in error and "A2" in error and "formula without a saved value" in error


def test_a_formula_is_read_by_its_saved_value(tmp_path: Path) -> None:
    formula = b'<row r="2"><c r="A2" t="str"><f>CONCAT("a","b")</f><v>ab</v></c></row>'

    assert rows_of(write_sheet(tmp_path / "in.xlsx", [text_row(1, "text"), formula])) == [{"text": "ab"}]


def understated(data: bytes, member: str) -> bytes:
    """The archive with `member`'s uncompressed size declared as 10 bytes: a bomb that lies about its size."""
    patched = bytearray(data)
    central = patched.index(b"PK\x01\x02")
    while not patched[central + 46 :].startswith(member.encode()):
        central = patched.index(b"PK\x01\x02", central + 4)
    patched[central + 24 : central + 28] = (10).to_bytes(4, "little")
    return bytes(patched)


def test_an_xlsx_bomb_is_refused_from_its_declared_size() -> None:
    content = zip_bytes({**VALID_XLSX_MEMBERS, SHEET: b"<a>" + b" " * 50_000_000 + b"</a>"})

    error = rows_or_error(content, "in.xlsx", max_bytes=200_000)

    assert isinstance(error, ImportFileError) and "unpacks to" in str(error)


def test_an_xlsx_bomb_that_lies_about_its_size_is_refused() -> None:
    sheet = VALID_XLSX_MEMBERS[SHEET].replace(
        b"</sheetData>", b"<row r='9'>" + b" " * 5_000_000 + b"</row></sheetData>"
    )
    content = understated(zip_bytes({**VALID_XLSX_MEMBERS, SHEET: sheet}), SHEET)
    began = time.monotonic()

    error = rows_or_error(content, "in.xlsx")

    assert isinstance(error, ImportFileError)
    assert time.monotonic() - began < 5
