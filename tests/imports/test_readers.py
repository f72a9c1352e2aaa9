"""The readers of CSV, JSONL and XLSX (batches.imports.readers): a cell over the limit is refused while it is read,
never read whole first, so memory stays bounded by the limit, not by the cell; a huge cell the limit allows imports;
NUL bytes and invalid UTF-8 are refused naming their place."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from batches.imports.importers import ImportFileError, parse_file
from tests.imports.hostile import rows_or_error
from tests.xlsxfiles import text_row, write_sheet

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:openpyxl")

HUGE = 20 * 1024 * 1024  # characters


@pytest.fixture(autouse=True)
def small_cells(settings: Any) -> None:
    settings.BATCHES_MAX_CELL_BYTES = 100 * 1024


def refused_with_peak(path: Path) -> tuple[str, int]:
    tracemalloc.start()
    try:
        with pytest.raises(ImportFileError) as caught:
            list(parse_file(path).rows)
        return str(caught.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_csv_cell_on_one_line_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text,lang\nsmall,en\n" + "x" * HUGE + ",en\n")

    message, peak = refused_with_peak(path)

    assert message == "line 3: longer than 1.8 MB (a value over the 0.1 MB limit per cell?)"
    assert peak < 8 * 2**20


def test_a_huge_quoted_csv_cell_over_many_lines_is_refused_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('text,lang\nsmall,en\n"' + ("x" * 99 + "\n") * (HUGE // 100) + '",en\n')

    message, peak = refused_with_peak(path)

    assert message == "line 3: a value is longer than the 0.1 MB limit per cell"
    assert peak < 8 * 2**20


def test_a_huge_jsonl_line_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "small"}\n{"text": "' + "x" * HUGE + '"}\n')

    message, peak = refused_with_peak(path)

    assert message == "line 2: longer than 1.8 MB (a value over the 0.1 MB limit per cell?)"
    assert peak < 8 * 2**20


def test_a_huge_xlsx_cell_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "in.xlsx", [text_row(1, "text"), text_row(2, "small"), text_row(3, "x" * HUGE)])

    message, peak = refused_with_peak(path)

    assert message == "row 3 takes more than 1.8 MB of XML: a value over the 0.1 MB limit per cell"
    assert peak < 8 * 2**20


def test_a_cell_just_over_the_limit_is_named_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text,lang\n" + "中" * 40_000 + ",en\n")

    assert refused_with_peak(path)[0] == "line 2: the 'text' value is 0.1 MB, over the 0.1 MB limit per cell"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("in.csv", b"text\n" + b"x" * 5_000_000 + b"\n"),
        ("in.csv", b'text\n"' + b"x" * 5_000_000 + b'"\n'),
        ("in.jsonl", b'{"text": "' + b"x" * 5_000_000 + b'"}\n'),
    ],
)
def test_a_huge_single_cell_imports_when_the_cell_limit_allows_it(name: str, content: bytes, settings: Any) -> None:
    settings.BATCHES_MAX_CELL_BYTES = 6_000_000  # the default (1 MiB) refuses it: tests/imports/test_importers.py
    rows = rows_or_error(content, name, max_bytes=10_000_000)

    assert isinstance(rows, list) and len(rows[0]["text"]) == 5_000_000


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("in.csv", b"text\nab\x00c\n", "the file looks binary (NUL byte at offset 7)"),
        ("in.jsonl", b'{"text": "a"}\n{"text": "\x00"}\n', "line 2: the file looks binary (NUL byte)"),
        ("in.csv", b"text\nab\xffc\n", "line 2: byte 7 cannot be decoded as UTF-8 or GB18030"),
        ("in.csv", b"\xef\xbb\xbftext\n\xff\n", "line 2: byte 8 cannot be decoded as UTF-8"),
        ("in.jsonl", b'{"text": "a"}\n{"text": "\xff"}\n', "line 2: byte 10 of the line is not valid UTF-8"),
        ("in.jsonl", b'{"text": "\xed\xa0\x80"}\n', "line 1: byte 10 of the line is not valid UTF-8"),
    ],
)
def test_nul_bytes_and_invalid_utf8_name_the_place(name: str, content: bytes, expected: str) -> None:
    error = rows_or_error(content, name)

    assert isinstance(error, ImportFileError) and str(error).startswith(expected)
