"""XLSX files for tests: plain workbooks from rows, and hand-made ones whose first sheet's XML is written piece by
piece (for hostile sheets)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import PatternFill

SHEET = "xl/worksheets/sheet1.xml"
HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
TAIL = b"</sheetData></worksheet>"
STRINGS_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml" />'
)


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    """A workbook whose first sheet holds these rows."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def skeleton() -> dict[str, bytes]:
    """The members of a one-sheet workbook with one fill style (s="1"), sheet included."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet["A1"] = "text"
    sheet["A1"].fill = PatternFill("solid", fgColor="FFFF00")
    buffer = io.BytesIO()
    workbook.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_sheet(path: Path, rows: Iterable[bytes]) -> Path:
    """An XLSX whose first sheet's <sheetData> holds these <row> elements (streamed into the archive)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in skeleton().items():
            if name != SHEET:
                archive.writestr(name, content)
        with archive.open(SHEET, "w", force_zip64=True) as sheet:
            sheet.write(HEAD)
            for row in rows:
                sheet.write(row)
            sheet.write(TAIL)
    return path


def text_row(number: int, *cells: str) -> bytes:
    columns = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    inner = "".join(
        f'<c r="{columns[i]}{number}" t="inlineStr"><is><t>{cell}</t></is></c>' for i, cell in enumerate(cells)
    )
    return f'<row r="{number}">{inner}</row>'.encode()


def styled_empty_rows(first: int, count: int) -> Iterable[bytes]:
    """Rows holding nothing but a style: what a sheet formatted far below its data holds."""
    for number in range(first, first + count):
        yield f'<row r="{number}" s="1" customFormat="1"><c r="A{number}" s="1"/></row>'.encode()


def with_shared_strings(path: Path, strings: Iterable[bytes], rows: Iterable[bytes] = ()) -> Path:
    """An XLSX whose shared strings table holds these <si> elements (streamed), and whose sheet holds `rows`."""
    strings_part = "xl/sharedStrings.xml"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in skeleton().items():
            if name == "[Content_Types].xml":
                content = content.replace(b"</Types>", STRINGS_TYPE + b"</Types>")
            if name not in (SHEET, strings_part):
                archive.writestr(name, content)
        archive.writestr(SHEET, HEAD + b"".join(rows) + TAIL)
        with archive.open(strings_part, "w", force_zip64=True) as table:
            table.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            for item in strings:
                table.write(item)
            table.write(b"</sst>")
    return path


def shared_row(number: int, *indexes: int) -> bytes:
    columns = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    inner = "".join(f'<c r="{columns[i]}{number}" t="s"><v>{index}</v></c>' for i, index in enumerate(indexes))
    return f'<row r="{number}">{inner}</row>'.encode()
