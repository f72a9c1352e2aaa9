"""The first sheet of an XLSX file as numbered rows of values, in bounded memory whatever the file holds.

openpyxl's own read-only reader keeps every parsed row element (and each styled row's attributes) until the sheet
ends, and fills a gap in the row numbers with one empty row per missing number: one million empty styled rows took
578 MB. Here openpyxl reads only the workbook's parts list and styles; the shared strings (xlsx_strings.py)
and the rows (xlsx_sheet.py) are streamed by expat, each row dropped once read and capped in elements and
bytes. The archive's directory is bounded before zipfile reads it (batches/imports/zip_directory.py), and zip bombs are
refused from the sizes the archive declares, before anything is inflated (Python's zipfile never inflates a member
past its declared size, and every part is counted again while read).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

from openpyxl.reader.excel import ExcelReader
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils import get_column_letter

from batches.conf import settings
from batches.imports import xlsx_sheet, xlsx_strings, zip_directory

MAX_COLUMNS = 16_384  # Excel's own limit (XFD)
MAX_ENTRIES = 10_000  # parts of the workbook's ZIP (a real one has tens; images and sheets add a few each)
NOT_XLSX = "not a valid XLSX file (corrupt, password-protected or an old .xls): save it again as .xlsx"
ROW_CELLS = 8  # a row may take the XML of this many cells at their limit, plus its formatting
FORMATTING = 1024 * 1024
MAX_HELD_ELEMENTS = 200_000  # XML elements held at once (one row's cells and their parts)

Numbered = Iterator[tuple[int, list[Any]]]


class XlsxError(ValueError):
    """The workbook cannot be read; str(error) is one line."""


def check_archive(path: Path, limit: int) -> None:
    """Refuse what is not a zip archive, and archives that declare more than `limit` bytes unpacked."""
    try:
        with path.open("rb") as f:
            zip_directory.check(f, max_entries=MAX_ENTRIES, what="XLSX")
    except zip_directory.DamagedZip:
        raise XlsxError(NOT_XLSX) from None
    except zip_directory.ZipDirectoryError as exc:
        raise XlsxError(str(exc)) from None
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except Exception:  # zipfile raises many kinds on a damaged archive (BadZipFile, NotImplementedError, EOFError...)
        raise XlsxError(NOT_XLSX) from None
    if unpacked > limit:
        raise XlsxError(f"the XLSX file unpacks to {_mb(unpacked)}, over the {_mb(limit)} limit")


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size} bytes"


def records(
    path: Path, *, max_unpacked: int, max_blank_rows: int, bounds: xlsx_strings.Bounds | None = None
) -> Numbered:
    """(row number, values) of the first sheet; a gap in the row numbers is one blank row at its first number.

    `bounds`: the shared strings' and a cell's (default: the settings); a row may take ROW_CELLS cells' worth of XML.
    """
    bounds = bounds or default_bounds()
    with path.open("rb") as f:  # a file object: openpyxl would otherwise insist on an .xlsx file name
        try:
            reader, target = _open(f, bounds, max_unpacked)
            per_row = ROW_CELLS * bounds.cell_bytes + FORMATTING
            source = _Counted(reader.archive.open(target), max_unpacked, per_row, "row 1")
        except XlsxError:
            raise
        except Exception as exc:  # openpyxl raises many kinds on a damaged workbook
            raise XlsxError(f"not a valid XLSX file ({type(exc).__name__}): save it again as .xlsx") from None
        try:
            yield from _blank_capped(_numbered(_sheet(reader), source), max_blank_rows)
        finally:
            source.close()
            reader.archive.close()


def default_bounds() -> xlsx_strings.Bounds:
    return xlsx_strings.Bounds(
        strings=settings.BATCHES_MAX_XLSX_SHARED_STRINGS,
        chars=settings.BATCHES_MAX_XLSX_SHARED_CHARS,
        cell_bytes=settings.BATCHES_MAX_CELL_BYTES,
    )


def _open(f: IO[bytes], bounds: xlsx_strings.Bounds, max_unpacked: int) -> tuple[ExcelReader, str]:
    """The workbook's strings and styles, and the path of its first worksheet inside the archive.

    Like openpyxl's read-only load_workbook, without its read-only worksheets: each of those scans its whole sheet
    for a <dimension> element on creation (a million rows, when a hostile sheet has none).
    """
    reader = ExcelReader(f, read_only=True, data_only=True)
    reader.read_manifest()
    try:
        opened = lambda name: _Counted(reader.archive.open(name), max_unpacked)  # noqa: E731
        reader.shared_strings = xlsx_strings.read(reader, bounds, opened)
    except xlsx_strings.StringsError as exc:
        raise XlsxError(str(exc)) from None
    reader.read_workbook()
    apply_stylesheet(reader.archive, reader.wb)
    for _, rel in reader.parser.find_sheets():
        if rel.target in reader.valid_files and "chartsheet" not in rel.Type:
            return reader, rel.target
    raise XlsxError("the workbook has no worksheet")


def _sheet(reader: ExcelReader) -> xlsx_sheet.SheetRows:
    book: Any = reader.wb  # the date formats are private attributes set by apply_stylesheet
    return xlsx_sheet.SheetRows(
        reader.shared_strings,
        date_styles=book._date_formats,
        timedelta_styles=book._timedelta_formats,
        epoch=book.epoch,
        max_elements=MAX_HELD_ELEMENTS,
    )


def _numbered(sheet: xlsx_sheet.SheetRows, source: _Counted) -> Numbered:
    expected = 1
    number = 0
    try:
        for number, cells in sheet.rows(source):
            source.mark(f"row {number + 1}")
            if number > expected:
                yield expected, []
            yield number, _values(number, cells)
            expected = number + 1
    except XlsxError:
        raise
    except xlsx_sheet.SheetError as exc:
        raise XlsxError(str(exc)) from None
    except Exception as exc:  # a damaged sheet fails while it is read: bad XML, a bad CRC, a bad coordinate
        where = sheet.number or number + 1  # the row being read when it failed
        raise XlsxError(f"row {where}: the sheet is damaged ({type(exc).__name__})") from None


def _blank_capped(rows: Numbered, cap: int) -> Numbered:
    """Every row read counts: more than `cap` blank rows in a row is an error, not an endless read."""
    run = 0
    for number, values in rows:
        run = run + 1 if _is_blank(values) else 0
        if run > cap:
            raise XlsxError(
                f"row {number}: more than {cap} blank rows in a row; delete the empty (perhaps only formatted) rows"
            )
        yield number, values


def _is_blank(values: list[Any]) -> bool:
    return all(v == "" or (isinstance(v, str) and not v.strip()) for v in values)


def _values(number: int, cells: list[dict[str, Any]]) -> list[Any]:
    width = max((cell["column"] for cell in cells), default=0)
    if width > MAX_COLUMNS:
        raise XlsxError(f"row {number}: a cell beyond column {get_column_letter(MAX_COLUMNS)}")
    values: list[Any] = [""] * width
    for cell in cells:
        values[cell["column"] - 1] = _value(number, cell)
    return values


def _value(number: int, cell: dict[str, Any]) -> Any:
    value = cell["value"]
    if isinstance(value, float) and not math.isfinite(value):
        where = f"{get_column_letter(cell['column'])}{number}"
        raise XlsxError(f"row {number}: cell {where} is a number out of range")
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Counted:
    """A part's stream that refuses to yield more than `limit` bytes (a guard besides the declared sizes), nor
    more than `per_item` bytes since its last mark (one row, or one shared string, is never read whole past it)."""

    def __init__(self, stream: IO[bytes], limit: int, per_item: int | None = None, item: str = "") -> None:
        self.stream, self.limit, self.seen = stream, limit, 0
        self.per_item, self.item, self.marked = per_item, item, 0

    def mark(self, item: str | None = None) -> None:
        self.marked, self.item = self.seen, item or self.item

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.seen += len(data)
        if self.seen > self.limit:
            raise XlsxError(f"the sheet unpacks to more than {_mb(self.limit)}")
        if self.per_item is not None and self.seen - self.marked > self.per_item:
            raise XlsxError(
                f"{self.item} takes more than {_mb(self.per_item)} of XML: "
                f"a value over the {_mb(settings.BATCHES_MAX_CELL_BYTES)} limit per cell"
            )
        return data

    def close(self) -> None:
        self.stream.close()
