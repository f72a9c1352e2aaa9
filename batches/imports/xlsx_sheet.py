"""A worksheet's rows, streamed by expat (issue 27: every upload read within 10 s).

openpyxl builds an element per tag and decodes each cell through several lookups: a 240 MB sheet (90,000 rows of
26 cells) took 17 s of CPU. Here expat calls small handlers, and a cell is decoded as openpyxl decodes it with
`data_only` (a formula's cached value; a number in a date style is a date; `s`, `str`, `inlineStr`, `b`, `d`, `e`
types), into the {"column", "value"} dicts xlsx_reader.py reads. A row may hold at most `max_elements` XML
elements; completed rows are handed over after each chunk, so only one chunk's rows are held.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from warnings import warn
from xml.parsers import expat

from openpyxl.utils.cell import coordinate_to_tuple, get_column_letter
from openpyxl.utils.datetime import from_excel, from_ISO8601
from openpyxl.xml.constants import SHEET_MAIN_NS

NS = f"{SHEET_MAIN_NS} "
ROW, CELL, VALUE, INLINE, TEXT, PHONETIC, FORMULA = (NS + tag for tag in ("row", "c", "v", "is", "t", "rPh", "f"))
CHUNK = 64 * 1024

Row = tuple[int, list[dict[str, Any]]]


class SheetError(ValueError):
    """The sheet is refused; str(error) is one line."""


class SheetRows:
    def __init__(
        self,
        shared_strings: list[str],
        *,
        date_styles: set[int],
        timedelta_styles: set[int],
        epoch: datetime,
        max_elements: int,
    ) -> None:
        self.strings, self.dates, self.timedeltas, self.epoch = shared_strings, date_styles, timedelta_styles, epoch
        self.max_elements = max_elements
        self.ready: list[Row] = []
        self.cells: list[dict[str, Any]] = []
        self.number = self.column = self.elements = self.phonetic = self.depth = 0
        self.cell: dict[str, Any] = {}
        self.value: list[str] | None = None  # the text being collected (<v>, or an inline string's <t>)
        self.inline: list[str] | None = None

    def rows(self, source: Any) -> Iterator[Row]:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.text
        parser.StartDoctypeDeclHandler = self.doctype
        while chunk := source.read(CHUNK):
            parser.Parse(chunk, False)
            yield from self._handed_over()
        parser.Parse(b"", True)
        yield from self._handed_over()

    def _handed_over(self) -> list[Row]:
        ready, self.ready = self.ready, []
        return ready

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        self.elements += 1
        if self.elements > self.max_elements:
            raise SheetError(f"a row of the sheet holds more than {self.max_elements} XML elements")
        if name == CELL:
            self._start_cell(attributes)
        elif name == VALUE and self.cell:
            self.value = []
        elif name == INLINE and self.cell:
            self.inline = []
        elif name == TEXT and self.inline is not None and not self.phonetic:
            self.value = []
        elif name == PHONETIC:
            self.phonetic += 1
        elif name == FORMULA and self.cell:
            self.cell["formula"] = True
        elif name == ROW:
            self._start_row(attributes)

    def _start_row(self, attributes: dict[str, str]) -> None:
        number = attributes.get("r")
        if number is None:
            self.number += 1
        else:
            value = float(number)
            if not value.is_integer():
                raise ValueError(f"{number} is not a valid row number")
            self.number = int(value)
        self.column, self.cells = 0, []

    def _start_cell(self, attributes: dict[str, str]) -> None:
        where = attributes.get("r")
        self.column = coordinate_to_tuple(where)[1] if where else self.column + 1
        style = attributes.get("s")
        self.cell = {"column": self.column, "type": attributes.get("t", "n"), "style": int(style) if style else 0}
        self.cell["text"] = None

    def end(self, name: str) -> None:
        self.depth -= 1
        if self.depth <= 2:  # a child of the sheet or of its data (a row) is done with: its elements are not held
            self.elements = self.depth
        if name == VALUE and self.value is not None:
            self.cell["text"] = "".join(self.value)
            self.value = None
        elif name == TEXT and self.inline is not None and self.value is not None:
            self.inline.extend(self.value)
            self.value = None
        elif name == PHONETIC:
            self.phonetic -= 1
        elif name == INLINE and self.inline is not None:
            self.cell["inline"] = "".join(self.inline)
            self.inline = None
        elif name == CELL and self.cell:
            self._require_a_saved_value(self.cell)
            self.cells.append({"column": self.cell["column"], "value": self._decoded(self.cell)})
            self.cell = {}
        elif name == ROW:
            self.ready.append((self.number, self.cells))
            self.cells = []

    def text(self, data: str) -> None:
        if self.value is not None:
            self.value.append(data)

    def _require_a_saved_value(self, cell: dict[str, Any]) -> None:
        """A formula is read by its saved value: without one it would read as an empty cell, silently."""
        if cell.get("formula") and cell["text"] is None and cell.get("inline") is None:
            where = f"{get_column_letter(cell['column'])}{self.number}"
            raise SheetError(
                f"row {self.number}: cell {where} holds a formula without a saved value (the program that wrote the "
                "file did not calculate it): open the file in Excel or LibreOffice, save it, and import it again"
            )

    def doctype(self, *args: Any) -> None:
        raise SheetError("the sheet declares a document type (never in a real workbook)")

    def _decoded(self, cell: dict[str, Any]) -> Any:
        """The cell's value as openpyxl's WorkSheetParser.parse_cell gives it with data_only."""
        kind, text = cell["type"], cell["text"] or None
        if kind == "inlineStr":
            return cell.get("inline")
        if text is None:
            return None
        if kind == "n":
            return self._number(_cast_number(text), cell["style"])
        if kind == "s":
            return self.strings[int(text)]
        if kind == "b":
            return bool(int(text))
        if kind == "d":
            return from_ISO8601(text)
        return text  # "str" (a formula's text), "e" (an error such as #N/A)

    def _number(self, value: Any, style: int) -> Any:
        if style not in self.dates:
            return value
        try:
            return from_excel(value, self.epoch, timedelta=style in self.timedeltas)
        except (OverflowError, ValueError):
            warn(f"a serial value {value} in a date style is outside the limits for dates", stacklevel=2)
            return "#VALUE!"


def _cast_number(text: str) -> float | int:
    """As openpyxl reads a number cell: a float when it has a point or an exponent, else an int."""
    if "." in text or "E" in text or "e" in text:
        return float(text)
    return int(text)
