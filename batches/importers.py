"""Parse and validate an import file (CSV, XLSX or JSONL), streamed: rows are yielded one at a time.

Every problem raises ImportFileError whose message is one line naming the line (CSV, JSONL) or row (XLSX).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings

from batches import inputs, readers
from batches.dify.types import InputVariable
from batches.readers import MAX_COLUMNS, ImportFileError, Numbered

EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class ParsedFile:
    format: str  # "csv" | "xlsx" | "jsonl"
    columns: list[str]  # input variable names after label→name mapping
    encoding: str | None  # CSV only: "utf-8", "utf-8-sig" or "gb18030"
    delimiter: str | None  # CSV only
    rows: Iterator[dict[str, Any]]  # lazy; may raise ImportFileError for a bad row


def parse_file(
    path: str | Path,
    *,
    filename: str | None = None,
    variables: list[InputVariable] | None = None,
    mode: str = "workflow",
    max_bytes: int | None = None,
    max_rows: int | None = None,
) -> ParsedFile:
    """Check the file and its header now; return a ParsedFile whose rows are read lazily."""
    path = Path(path)
    fmt = detect_format(filename or path.name)
    max_bytes = settings.BATCHES_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    max_rows = settings.BATCHES_MAX_ROWS if max_rows is None else max_rows
    _check_size(path, max_bytes)
    source = {"csv": readers.read_csv, "xlsx": readers.read_xlsx, "jsonl": readers.read_jsonl}[fmt](path, max_bytes)
    columns = map_columns(source.columns, variables, mode)
    rows = _limited(source.records, source.unit, columns, max_rows, variables)
    first = next(rows, None)
    if first is None:
        raise ImportFileError("the file has a header but no data rows")
    return ParsedFile(fmt, columns, source.encoding, source.delimiter, _prepend(first, rows))


def preview(
    path: str | Path,
    *,
    filename: str | None = None,
    variables: list[InputVariable] | None = None,
    mode: str = "workflow",
    limit: int = 20,
) -> tuple[ParsedFile, list[dict[str, Any]]]:
    """The parsed file and its first `limit` rows (the rest of the file is not read)."""
    parsed = parse_file(path, filename=filename, variables=variables, mode=mode)
    rows = list(islice(parsed.rows, limit))
    if isinstance(parsed.rows, Generator):
        parsed.rows.close()  # release the file (an XLSX workbook stays open until its rows are read)
    return parsed, rows


def count_rows(
    path: str | Path,
    *,
    filename: str | None = None,
    variables: list[InputVariable] | None = None,
    mode: str = "workflow",
) -> int:
    """How many data rows the file has, read to its end: a bad row raises ImportFileError now, before any import."""
    parsed = parse_file(path, filename=filename, variables=variables, mode=mode)
    return sum(1 for _ in parsed.rows)


def detect_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ImportFileError(f"unsupported file type {suffix or filename!r}: use CSV, XLSX or JSONL")
    return EXTENSIONS[suffix]


def map_columns(header: list[str], variables: list[InputVariable] | None, mode: str) -> list[str]:
    """Map labels to variable names and check the columns against the app's input form."""
    if len(header) > MAX_COLUMNS:
        raise ImportFileError(f"{len(header)} columns: at most {MAX_COLUMNS} (an exported spreadsheet must hold them)")
    columns = header if variables is None else _match_variables(header, variables, mode)
    if mode == "chat" and "query" not in columns:
        raise ImportFileError("missing required column 'query': a chat app needs the user's message")
    return columns


def _match_variables(header: list[str], variables: list[InputVariable], mode: str) -> list[str]:
    names = {v.variable for v in variables} | ({"query"} if mode == "chat" else set())
    by_label = {v.label.strip(): v.variable for v in variables if v.label}
    columns = [h if h in names else by_label.get(h, "") for h in header]
    unknown = [h for h, c in zip(header, columns, strict=True) if not c]
    if unknown:
        expected = ", ".join(_describe(v) for v in variables) or "none"
        raise ImportFileError(f"unknown column(s) {readers.names(unknown)}; the app expects: {expected}")
    _check_duplicates(header, columns)
    for var in variables:
        if var.required and var.variable not in columns:
            raise ImportFileError(f"missing required column {_describe(var)}")
    return columns


def _check_duplicates(header: list[str], columns: list[str]) -> None:
    seen: dict[str, str] = {}
    for cell, name in zip(header, columns, strict=True):
        if name in seen:
            raise ImportFileError(f"columns {seen[name]!r} and {cell!r} both give variable {name!r}")
        seen[name] = cell


def _describe(var: InputVariable) -> str:
    if var.label and var.label != var.variable:
        return f"{var.variable!r} (label {var.label!r})"
    return repr(var.variable)


def _check_size(path: Path, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror}") from None
    if size > max_bytes:
        raise ImportFileError(f"the file is {_mb(size)}, over the {_mb(max_bytes)} limit")
    if size == 0:
        raise ImportFileError("the file is empty")


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size} bytes"


def _prepend(first: dict[str, Any], rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rows


def _limited(
    records: Numbered, unit: str, columns: list[str], max_rows: int, variables: list[InputVariable] | None = None
) -> Iterator[dict[str, Any]]:
    max_cell = settings.BATCHES_MAX_CELL_BYTES
    for count, (number, values) in enumerate(records, start=1):
        if count > max_rows:
            raise ImportFileError(f"{unit} {number}: more than {max_rows} data rows (the limit is {max_rows})")
        row = dict(zip(columns, values, strict=True))
        for column, value in row.items():
            _check_cell(value, max_cell, f"{unit} {number}: the {column!r} value")
        yield _typed(row, variables, f"{unit} {number}")


def _typed(row: dict[str, Any], variables: list[InputVariable] | None, where: str) -> dict[str, Any]:
    """The row converted to the types the app declares (batches/inputs.py)."""
    try:
        return inputs.convert_row(row, variables) if variables else row
    except inputs.InputError as exc:
        raise ImportFileError(f"{where}: {exc}") from None


def _check_cell(value: Any, limit: int, where: str) -> None:
    """A cell over `limit` bytes (UTF-8, or JSON for nested values) is refused: every page would carry it."""
    if isinstance(value, str):
        size = len(value.encode()) if len(value) > limit // 4 else 0
    elif isinstance(value, dict | list):
        size = len(json.dumps(value, ensure_ascii=False).encode())
    else:
        return
    if size > limit:
        raise ImportFileError(f"{where} is {_mb(size)}, over the {_mb(limit)} limit per cell")
