"""Reading an import file into a table, streamed: a header and numbered rows of cells, from CSV (any common
encoding and delimiter), XLSX or JSONL. What the cells mean (columns, types, limits) is for importers.py.

Every problem raises ImportFileError whose message is one line naming the line (CSV, JSONL) or row (XLSX).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, count
from pathlib import Path
from typing import IO, Any

from openpyxl.utils import get_column_letter

from batches.conf import settings
from batches.db import strictjson
from batches.imports import xlsx_reader

SNIFF_CHARS = 64 * 1024
DELIMITERS = ",;\t|"
LINE_CELLS = 8  # a line may hold this many cells at the limit
LINE_SLACK = 1024 * 1024  # besides them: the row's other, short cells and their delimiters
XLSX_EXPANSION = 20  # an XLSX may also unpack to at most this many times max_bytes
MAX_COLUMNS = 16_000  # an XLSX export holds 16,384 columns, a few of them fixed ones
MAX_BLANK_XLSX_ROWS = 1000  # blank rows in a row (each one read costs time; a sheet may hold a million)
ZIP_MAGIC = b"PK\x03\x04"
EXPORT_KEYS = frozenset({"id", "index", "inputs", "status", "outputs", "error_type", "error", "attempts"})
EXPORT_OPTIONAL = frozenset({"row", "extra"})  # row: 1-based; extra: the ignored columns (never sent)
CHUNK_BYTES = 1024 * 1024

Numbered = Iterator[tuple[int, list[Any]]]  # (line or row number, cells)


class ImportFileError(ValueError):
    """A file that cannot be imported; str(error) is one line naming where and what."""


@dataclass
class Table:
    unit: str  # "line" or "row", for messages
    columns: list[str]  # as written in the file
    records: Numbered  # values aligned with columns
    encoding: str | None = None
    delimiter: str | None = None


def _is_blank(cells: list[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _table(records: Numbered, unit: str, strict: bool) -> tuple[list[str], Numbered]:
    """Split records into a header (the first non-blank row) and the data rows after it."""
    for number, cells in records:
        if not _is_blank(cells):
            header = _header(number, cells, unit, strict)
            return header, _body(records, len(header), unit, strict)
    raise ImportFileError("the file is empty: no header row")


def _header(number: int, cells: list[Any], unit: str, strict: bool) -> list[str]:
    names = ["" if c is None else str(c).strip() for c in cells]
    while not strict and names and not names[-1]:
        names.pop()
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name:
            raise ImportFileError(f"{unit} {number}: column {_column(i, unit)} has no name in the header")
        if name in seen:
            raise ImportFileError(f"{unit} {number}: duplicate column {name!r} in the header")
        seen.add(name)
    return names


def _body(records: Numbered, width: int, unit: str, strict: bool) -> Numbered:
    blank_at: int | None = None
    for number, cells in records:
        if _is_blank(cells):
            blank_at = blank_at or number
        elif blank_at is not None:
            raise ImportFileError(f"{unit} {blank_at}: blank {unit} between data rows (only trailing ones are allowed)")
        else:
            yield number, _fit(number, cells, width, unit, strict)


def _fit(number: int, cells: list[Any], width: int, unit: str, strict: bool) -> list[Any]:
    if len(cells) == width:
        return cells
    if strict:
        raise ImportFileError(f"{unit} {number}: expected {width} fields, found {len(cells)}")
    extra = [i for i in range(width, len(cells)) if not _is_blank([cells[i]])]
    if extra:
        raise ImportFileError(f"{unit} {number}: cell {_column(extra[0], unit)}{number} is beyond the header's columns")
    return cells[:width] + [""] * (width - len(cells))


def _column(index: int, unit: str) -> str:
    return str(index + 1) if unit == "line" else get_column_letter(index + 1)


def read_csv(path: Path, max_bytes: int) -> Table:
    encoding = detect_encoding(path)
    delimiter = _sniff(path, encoding)
    header, rows = _table(_csv_records(path, encoding, delimiter), "line", strict=True)
    return Table("line", header, rows, encoding, delimiter)


def detect_encoding(path: Path) -> str:
    """utf-8-sig (BOM), utf-8 or gb18030, after decoding the whole file; NUL bytes mean binary."""
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError("the file is UTF-16 text: save it as CSV UTF-8")
    if head == ZIP_MAGIC:
        raise ImportFileError("the file looks binary (a zip archive, perhaps an XLSX file named .csv)")
    candidates = ("utf-8-sig",) if head.startswith(codecs.BOM_UTF8) else ("utf-8", "gb18030")
    failures = []
    for encoding in candidates:
        failure = _decode_failure(path, encoding)
        if failure is None:
            return encoding
        failures.append(failure)
    offset, line = max(failures)
    tried = " or ".join(c.replace("-sig", "").upper() for c in candidates)
    raise ImportFileError(f"line {line}: byte {offset} cannot be decoded as {tried}: save the file as UTF-8")


def _decode_failure(path: Path, encoding: str) -> tuple[int, int] | None:
    """(byte offset, line number) of the first undecodable byte, or None if the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding.removesuffix("-sig"))()  # BOM kept: offsets stay true
    offset = lines = 0
    with path.open("rb") as f:
        for chunk in chain(iter(lambda: f.read(CHUNK_BYTES), b""), [b""]):
            _check_binary(chunk, offset)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = exc.start - pending
                return offset + at, lines + chunk.count(b"\n", 0, max(at, 0)) + 1
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return None


def _check_binary(chunk: bytes, offset: int) -> None:
    nul = chunk.find(b"\0")
    if nul >= 0:
        raise ImportFileError(f"the file looks binary (NUL byte at offset {offset + nul}): use CSV, XLSX or JSONL")


def _sniff(path: Path, encoding: str) -> str:
    """The delimiter that splits the header into most columns and keeps the sample's rows that wide."""
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(SNIFF_CHARS)
        if f.read(1):
            sample = sample[: sample.rfind("\n") + 1] or sample
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        score = _delimiter_score(sample, delimiter)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _delimiter_score(sample: str, delimiter: str) -> tuple[float, int]:
    try:
        widths = [len(r) for r in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if r]
    except csv.Error:
        return (0.0, 0)
    if not widths or widths[0] < 2:
        return (0.0, 0)
    return (sum(w == widths[0] for w in widths) / len(widths), widths[0])


def _csv_records(path: Path, encoding: str, delimiter: str) -> Numbered:
    # A field stops at the cell limit while it is read (a character is at least a byte): csv's own limit.
    cell = settings.BATCHES_MAX_CELL_BYTES
    csv.field_size_limit(cell)
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(_bounded_lines(f), delimiter=delimiter, strict=True)
        start = 1
        try:
            for cells in reader:
                yield start, cells
                start = reader.line_num + 1
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise ImportFileError(f"line {start}: a value is longer than the {_mb(cell)} limit per cell") from None
            raise ImportFileError(f"line {start}: malformed CSV ({exc})") from None


def max_line() -> int:
    """The longest line read: LINE_CELLS cells at the limit, so a huge value is never read whole (issue 27, L7)."""
    return LINE_CELLS * settings.BATCHES_MAX_CELL_BYTES + LINE_SLACK


def _bounded_lines(f: IO[Any]) -> Iterator[Any]:
    """The file's lines (text or bytes), each read at most max_line() long: a longer one is refused."""
    limit = max_line()
    for number in count(1):
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            cell = _mb(settings.BATCHES_MAX_CELL_BYTES)
            raise ImportFileError(f"line {number}: longer than {_mb(limit)} (a value over the {cell} limit per cell?)")
        yield line


def read_xlsx(path: Path, max_bytes: int) -> Table:
    limit = min(settings.BATCHES_MAX_XLSX_UNPACKED_BYTES, max_bytes * XLSX_EXPANSION)
    try:
        xlsx_reader.check_archive(path, limit)
        rows = xlsx_reader.records(path, max_unpacked=limit, max_blank_rows=MAX_BLANK_XLSX_ROWS)
        header, body = _table(rows, "row", strict=False)
    except xlsx_reader.XlsxError as exc:
        raise ImportFileError(str(exc)) from None
    return Table("row", header, _xlsx_errors(body))


def _xlsx_errors(rows: Numbered) -> Numbered:
    try:
        yield from rows
    except xlsx_reader.XlsxError as exc:
        raise ImportFileError(str(exc)) from None


def read_jsonl(path: Path, max_bytes: int) -> Table:
    objects = _jsonl_objects(path)
    for number, first in objects:
        keys = list(first)
        if not keys:
            raise ImportFileError(f"line {number}: the first object has no keys to name the columns")
        nested = _is_export(first)
        columns = list(first["inputs"]) if nested else keys
        return Table("line", columns, _jsonl_records(chain([(number, first)], objects), keys, nested))
    raise ImportFileError("the file is empty")


def _is_export(obj: dict[str, Any]) -> bool:
    """One of our own JSONL exports: its rows are read again from their inputs (the rest is what they did)."""
    return EXPORT_KEYS <= set(obj) <= EXPORT_KEYS | EXPORT_OPTIONAL and isinstance(obj["inputs"], dict)


def _jsonl_records(objects: Iterator[tuple[int, dict[str, Any]]], keys: list[str], nested: bool) -> Numbered:
    """Values per object; `nested` (the export format): the values of each object's `inputs`."""
    columns: list[str] | None = None
    for number, obj in objects:
        _check_keys(number, obj, keys, "")
        row = obj["inputs"] if nested else obj
        if not isinstance(row, dict):
            raise ImportFileError(f"line {number}: 'inputs' must be an object, as in the first line")
        columns = columns or list(row)
        _check_keys(number, row, columns, "inputs " if nested else "")
        yield number, [row[k] for k in columns]


def _check_keys(number: int, obj: dict[str, Any], keys: list[str], what: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ImportFileError(f"line {number}: missing {what}key(s) {names(missing)}")
    if len(obj) != len(keys):
        extra = [k for k in obj if k not in keys]
        raise ImportFileError(f"line {number}: unexpected {what}key(s) {names(extra)} (not in the first object)")


def _jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    blank_at: int | None = None
    with path.open("rb") as f:
        for number, raw in enumerate(_bounded_lines(f), start=1):
            line = _jsonl_text(number, raw)
            if not line.strip():
                blank_at = blank_at or number
                continue
            if blank_at is not None:
                raise ImportFileError(f"line {blank_at}: blank line between objects (only trailing ones are allowed)")
            yield number, _jsonl_object(number, line)


def _jsonl_text(number: int, raw: bytes) -> str:
    if b"\0" in raw:
        raise ImportFileError(f"line {number}: the file looks binary (NUL byte): use CSV, XLSX or JSONL")
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"line {number}: byte {exc.start} of the line is not valid UTF-8") from None


def _jsonl_object(number: int, line: str) -> dict[str, Any]:
    try:
        value = strictjson.loads(line)
    except strictjson.LoneSurrogate as exc:
        raise ImportFileError(f"line {number}: {exc}") from None
    except RecursionError:
        raise ImportFileError(f"line {number}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN, a number out of range, an integer too long
        detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ImportFileError(f"line {number}: invalid JSON ({detail})") from None
    if not isinstance(value, dict):
        raise ImportFileError(f"line {number}: expected a JSON object, found {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def names(items: Iterable[str]) -> str:
    return ", ".join(repr(item) for item in items)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size} bytes"
