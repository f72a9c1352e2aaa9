"""The sheet's rows streamed by expat (batches/imports/xlsx_sheet.py) read cells as openpyxl's data_only parse does,
refuse an XML entity bomb and numbers out of range, and keep a cell as long as Excel allows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from batches.imports.importers import ImportFileError, parse_file
from tests.imports.hostile import SHEET, VALID_XLSX_MEMBERS, rows_or_error, zip_bytes
from tests.xlsxfiles import text_row, write_sheet, xlsx_bytes

CELLS = (
    b'<row r="2">'
    b'<c r="A2" t="inlineStr"><is><r><t>rich </t></r><r><t>text</t></r><rPh sb="0" eb="1"><t>reading</t></rPh></is></c>'
    b'<c r="B2" t="b"><v>1</v></c>'
    b'<c r="C2" t="str"><f>A2&amp;"x"</f><v>cached</v></c>'
    b'<c r="D2" t="e"><v>#N/A</v></c>'
    b'<c r="E2"><v>2.5</v></c>'
    b'<c r="F2"/>'
    b"</row>"
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:openpyxl")


def test_cells_read_as_openpyxl_reads_them_with_cached_values(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "in.xlsx", [text_row(1, "text", "b", "f", "e", "n", "empty"), CELLS])

    assert list(parse_file(path).rows) == [
        {"text": "rich text", "b": True, "f": "cached", "e": "#N/A", "n": 2.5, "empty": ""}
    ]


def test_cells_without_coordinates_follow_each_other(tmp_path: Path) -> None:
    rows = [text_row(1, "a", "b"), b'<row><c t="inlineStr"><is><t>x</t></is></c><c><v>7</v></c></row>']

    assert list(parse_file(write_sheet(tmp_path / "in.xlsx", rows)).rows) == [{"a": "x", "b": 7}]


def test_an_xml_entity_bomb_in_a_sheet_is_refused() -> None:
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY e0 "boom">{entities}]><worksheet>&e9;</worksheet>'
    content = zip_bytes({**VALID_XLSX_MEMBERS, SHEET: bomb.encode()})
    began = time.monotonic()

    error = rows_or_error(content, "in.xlsx")

    assert isinstance(error, ImportFileError)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("value", [b"inf", b"-inf", b"nan", b"1e400"])
def test_a_number_cell_out_of_range_is_refused(value: bytes) -> None:
    sheet = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>text</t></is></c></row>'
        b'<row r="2"><c r="A2"><v>' + value + b"</v></c></row></sheetData></worksheet>"
    )

    error = rows_or_error(zip_bytes({**VALID_XLSX_MEMBERS, SHEET: sheet}), "in.xlsx")

    assert isinstance(error, ImportFileError) and str(error).startswith("row 2:")


def test_a_huge_single_xlsx_cell_imports() -> None:
    content = xlsx_bytes([["text"], ["x" * 32_000]])

    rows = rows_or_error(content, "in.xlsx")

    assert isinstance(rows, list) and len(rows[0]["text"]) == 32_000
