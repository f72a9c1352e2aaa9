"""Parse and validate an import file (CSV, XLSX or JSONL), streamed: rows are yielded one at a time.

Every problem raises ImportFileError whose message is one line naming the line (CSV, JSONL) or row (XLSX).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from batches.conf import settings
from batches.dify.types import InputVariable
from batches.imports import inputs, readers
from batches.imports import mapping as mapping_rules
from batches.imports.readers import MAX_COLUMNS, ImportFileError, Numbered

EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}


Record = tuple[dict[str, Any], dict[str, Any]]  # a row's inputs, and its ignored columns' values (Execution.extra)


@dataclass
class ParsedFile:
    format: str  # "csv" | "xlsx" | "jsonl"
    columns: list[str]  # input variable names after the mapping (ignored columns left out)
    encoding: str | None  # CSV only: "utf-8", "utf-8-sig" or "gb18030"
    delimiter: str | None  # CSV only
    records: Iterator[Record]  # lazy; may raise ImportFileError for a bad row
    header: list[str] = field(default_factory=list)  # as written in the file
    ignored: list[str] = field(default_factory=list)  # headers whose values are kept, never sent
    rows: Iterator[dict[str, Any]] = field(init=False)  # the records' inputs alone

    def __post_init__(self) -> None:
        self.rows = _inputs(self.records)

    def close(self) -> None:
        """Release the file (an XLSX workbook stays open until its rows are read)."""
        for rows in (self.rows, self.records):
            if isinstance(rows, Generator):
                rows.close()


def _inputs(records: Iterator[Record]) -> Iterator[dict[str, Any]]:
    try:
        for inputs, _ in records:
            yield inputs
    finally:
        if isinstance(records, Generator):
            records.close()


def parse_file(
    path: str | Path,
    *,
    filename: str | None = None,
    variables: list[InputVariable] | None = None,
    mode: str = "workflow",
    max_bytes: int | None = None,
    max_rows: int | None = None,
    mapping: dict[str, str] | None = None,
) -> ParsedFile:
    """Check the file and its header now; return a ParsedFile whose rows are read lazily.

    `mapping`: header → variable, or mapping.IGNORE (batches/imports/mapping.py); without it, by name then by label.
    """
    path = Path(path)
    fmt = detect_format(filename or path.name)
    max_bytes = settings.BATCHES_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    max_rows = settings.BATCHES_MAX_ROWS if max_rows is None else max_rows
    _check_size(path, max_bytes)
    source = {"csv": readers.read_csv, "xlsx": readers.read_xlsx, "jsonl": readers.read_jsonl}[fmt](path, max_bytes)
    resolved = map_columns(source.columns, variables, mode, mapping)
    records = _limited(source.records, source.unit, resolved, max_rows, variables)
    first = next(records, None)
    if first is None:
        raise ImportFileError("the file has a header but no data rows")
    return ParsedFile(
        fmt,
        resolved.columns,
        source.encoding,
        source.delimiter,
        _prepend(first, records),
        header=source.columns,
        ignored=resolved.ignored,
    )


def preview(
    path: str | Path,
    *,
    filename: str | None = None,
    variables: list[InputVariable] | None = None,
    mode: str = "workflow",
    limit: int = 20,
    mapping: dict[str, str] | None = None,
) -> tuple[ParsedFile, list[dict[str, Any]]]:
    """The parsed file and its first `limit` rows (the rest of the file is not read)."""
    parsed = parse_file(path, filename=filename, variables=variables, mode=mode, mapping=mapping)
    rows = list(islice(parsed.rows, limit))
    parsed.close()
    return parsed, rows


def count_rows(
    path: str | Path,
    *,
    filename: str | None = None,
    variables: list[InputVariable] | None = None,
    mode: str = "workflow",
    mapping: dict[str, str] | None = None,
) -> int:
    """How many data rows the file has, read to its end: a bad row raises ImportFileError now, before any import."""
    parsed = parse_file(path, filename=filename, variables=variables, mode=mode, mapping=mapping)
    return sum(1 for _ in parsed.records)


def detect_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ImportFileError(f"unsupported file type {suffix or filename!r}: use CSV, XLSX or JSONL")
    return EXTENSIONS[suffix]


def map_columns(
    header: list[str], variables: list[InputVariable] | None, mode: str, mapping: dict[str, str] | None = None
) -> mapping_rules.Resolved:
    """The variable each header gives, checked against the app's input form (batches/imports/mapping.py)."""
    if len(header) > MAX_COLUMNS:
        raise ImportFileError(f"{len(header)} columns: at most {MAX_COLUMNS} (an exported spreadsheet must hold them)")
    return mapping_rules.resolve(header, variables, mode, mapping)


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


def _prepend(first: Record, records: Iterator[Record]) -> Iterator[Record]:
    try:
        yield first
        yield from records
    finally:
        if isinstance(records, Generator):
            records.close()


def _limited(
    records: Numbered,
    unit: str,
    resolved: mapping_rules.Resolved,
    max_rows: int,
    variables: list[InputVariable] | None = None,
) -> Iterator[Record]:
    max_cell = settings.BATCHES_MAX_CELL_BYTES
    pairs = list(zip(resolved.header, resolved.targets, strict=True))
    for count, (number, values) in enumerate(records, start=1):
        if count > max_rows:
            raise ImportFileError(f"{unit} {number}: more than {max_rows} data rows (the limit is {max_rows})")
        row, extra = {}, {}
        for (cell, target), value in zip(pairs, values, strict=True):
            _check_cell(value, max_cell, f"{unit} {number}: the {(target or cell)!r} value")
            if target:
                row[target] = value
            else:
                extra[cell] = value
        yield _typed(row, variables, f"{unit} {number}"), extra


def _typed(row: dict[str, Any], variables: list[InputVariable] | None, where: str) -> dict[str, Any]:
    """The row converted to the types the app declares (batches/imports/inputs.py)."""
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
