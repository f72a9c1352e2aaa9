"""An XLSX workbook's shared strings, read within bounds (issue 27, M2).

openpyxl's own reader builds every <si> (rich text included) as objects, keeps every emptied element until the
table ends and is bounded by nothing but the part's declared size, which compresses about 400 times: a 46 KB file
took 29 s and 237 MB. Here expat streams the table to three small handlers that keep each string as text only
(ElementTree's parser builds an element per tag, four times slower), and the table is refused as soon as it holds
more than BATCHES_MAX_XLSX_SHARED_STRINGS strings, BATCHES_MAX_XLSX_SHARED_CHARS characters in all, or one string
longer than a cell may be (its text is never built whole). Expat refuses entity expansion bombs itself (2.4+), and
a document type declaration is refused here, so no entity is ever defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from openpyxl.reader.excel import ExcelReader
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS

SI = f"{SHEET_MAIN_NS} si"
T = f"{SHEET_MAIN_NS} t"
PHONETIC = f"{SHEET_MAIN_NS} rPh"  # a reading aid (furigana), not part of the cell's text
ELEMENTS_PER_STRING = 16  # a rich text run: <r>, <rPr> and its few settings, <t>
CHUNK = 64 * 1024


class StringsError(ValueError):
    """The shared strings are refused; str(error) is one line."""


@dataclass(frozen=True)
class Bounds:
    strings: int
    chars: int
    cell_bytes: int  # BATCHES_MAX_CELL_BYTES: a longer string cannot be imported anyway (a character is a byte or more)


def read(reader: ExcelReader, bounds: Bounds, open_part: Callable[[str], Any]) -> list[str]:
    """The workbook's shared strings (none when it has no table); `open_part(name)` opens a part of the archive."""
    part = reader.package.find(SHARED_STRINGS)
    if part is None:
        return []
    source = open_part(part.PartName[1:])
    try:
        return _Table(bounds).read(source)
    finally:
        source.close()


class _Table:
    """Each <si>'s text (its <t> elements outside phonetic runs), as openpyxl reads it, within the bounds."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.strings: list[str] = []
        self.parts: list[str] = []
        self.length = self.chars = self.elements = self.phonetic = 0
        self.in_text = False

    def read(self, source: Any) -> list[str]:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True  # text arrives in pieces of at most 8 KB, so a long string is stopped early
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.text
        parser.StartDoctypeDeclHandler = self.doctype
        try:
            while chunk := source.read(CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise StringsError(
                f"the workbook's shared strings are damaged ({expat.errors.messages[exc.code]})"
            ) from None
        return self.strings

    def start(self, name: str, attributes: Any) -> None:
        self.elements += 1
        if self.elements > ELEMENTS_PER_STRING * self.bounds.strings:
            raise StringsError(f"the workbook's shared strings hold more than {self.elements - 1:,} XML elements")
        if name == PHONETIC:
            self.phonetic += 1
        self.in_text = name == T and not self.phonetic

    def end(self, name: str) -> None:
        self.in_text = False
        if name == PHONETIC:
            self.phonetic -= 1
        elif name == SI:
            self.strings.append("".join(self.parts).replace("x005F_", ""))
            self.parts.clear()
            self.length = 0
            if len(self.strings) > self.bounds.strings:
                raise StringsError(f"the workbook holds more than {self.bounds.strings:,} shared strings")

    def text(self, data: str) -> None:
        if not self.in_text:
            return
        self.parts.append(data)
        self.length += len(data)
        self.chars += len(data)
        if self.length > self.bounds.cell_bytes:
            raise StringsError(f"a shared string is longer than the {_size(self.bounds.cell_bytes)} limit per cell")
        if self.chars > self.bounds.chars:
            raise StringsError(f"the workbook's shared strings hold more than {self.bounds.chars:,} characters")

    def doctype(self, *args: Any) -> None:
        raise StringsError("the workbook's shared strings declare a document type (never in a real workbook)")


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MB" if count >= 100 * 1024 else f"{count} bytes"
