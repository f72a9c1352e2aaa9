"""The sheet's rows streamed by expat (batches/imports/xlsx_sheet.py) read cells as openpyxl's data_only parse does."""

from __future__ import annotations

from pathlib import Path

from batches.imports.importers import parse_file
from tests.xlsxfiles import text_row, write_sheet

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


def test_cells_read_as_openpyxl_reads_them_with_cached_values(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "in.xlsx", [text_row(1, "text", "b", "f", "e", "n", "empty"), CELLS])

    assert list(parse_file(path).rows) == [
        {"text": "rich text", "b": True, "f": "cached", "e": "#N/A", "n": 2.5, "empty": ""}
    ]


def test_cells_without_coordinates_follow_each_other(tmp_path: Path) -> None:
    rows = [text_row(1, "a", "b"), b'<row><c t="inlineStr"><is><t>x</t></is></c><c><v>7</v></c></row>']

    assert list(parse_file(write_sheet(tmp_path / "in.xlsx", rows)).rows) == [{"a": "x", "b": 7}]
