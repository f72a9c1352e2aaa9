"""Write a batch's executions as CSV, XLSX or JSONL, streamed in constant memory.

The workflow's API key is never read here: only execution fields and attempt counts are exported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any
from urllib.parse import quote

from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.text import slugify
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell
from openpyxl.utils import get_column_letter

from batches.models import Attempt, BatchTask

FORMATS = ("csv", "xlsx", "jsonl")
CHUNK_BYTES = 64 * 1024
DB_CHUNK = 2000
# `index` counts from 0 as stored, `row` from 1 as the pages show it; CSV and XLSX have only `row`.
JSONL_KEYS = ("id", "index", "row", "inputs", "status", "outputs", "error_type", "error", "attempts")
# The tables (CSV, XLSX) add what a row cost and how fast it answered; JSONL keeps design.md's exact keys.
COST_KEYS = ("tokens", "elapsed_s", "latency_s", "price", "currency", "price_estimated")
ROW_FIELDS = ("id", "index", "inputs", "extra", "status", "outputs", "error_type", "error", "attempt_total")
COST_FIELDS = ("total_tokens", "elapsed", "latency", "price", "currency")
FIXED_COLUMNS = ("row", "status", "error_type", "error", "attempts")
INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NUMBER_LIKE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")  # -3.5, +8613800000000, 1e-3
XLSX_MAX_COLUMNS = 16_384  # Excel's limit: output keys past it go in one JSON column
UTF8_BOM = "\ufeff".encode()  # so Excel reads the CSV as UTF-8
XLSX_MAX_CELL = 32_767  # Excel refuses longer cells; CSV and JSONL keep the full text
WIDTH_SAMPLE = 200  # rows whose text sizes the XLSX columns

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson; charset=utf-8",
}


def content_type(fmt: str) -> str:
    return CONTENT_TYPES[_check_format(fmt)]


def file_name(batch: BatchTask, fmt: str) -> str:
    slug = slugify(batch.name, allow_unicode=True)[:60]  # a Chinese name stays in the file name
    return f"batch-{batch.pk}{'-' + slug if slug else ''}.{_check_format(fmt)}"


def attachment(filename: str) -> str:
    """A Content-Disposition for a download (RFC 6266): an ASCII `filename`, and `filename*` in UTF-8 when the name
    is not ASCII, so browsers save the exact name and older clients a readable one."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_").replace("\\", "_")
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def export_chunks(batch: BatchTask, fmt: str) -> Iterator[bytes]:
    """The export file as a stream of byte chunks."""
    writer = {"csv": _csv_chunks, "xlsx": _xlsx_chunks, "jsonl": _jsonl_chunks}[_check_format(fmt)]
    return writer(batch)


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


# --------------------------------------------------------------------------- reading


def executions(batch: BatchTask, *, cost: bool = False) -> Iterator[dict[str, Any]]:
    """The batch's executions in index order, as dicts with exactly JSONL_KEYS, and "extra" (the ignored columns'
    values) when the batch's file had ignored columns; with `cost`, also COST_KEYS (the tables' columns)."""
    keys = (*JSONL_KEYS, "extra") if batch.extra_columns else JSONL_KEYS
    keys = (*keys, *COST_KEYS) if cost else keys
    per_1k = batch.workflow.price_per_1k_tokens
    attempts = (
        Attempt.objects.filter(execution=OuterRef("pk"))
        .order_by()
        .values("execution")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = (
        batch.executions.order_by("index")
        .annotate(attempt_total=Coalesce(Subquery(attempts, output_field=IntegerField()), Value(0)))
        .values(*ROW_FIELDS, *(COST_FIELDS if cost else ()))
        .iterator(chunk_size=DB_CHUNK)
    )
    for row in rows:
        row["attempts"] = row.pop("attempt_total")
        row["row"] = row["index"] + 1
        if cost:
            _add_cost(row, per_1k)
        yield {key: row[key] for key in keys}


def _add_cost(row: dict[str, Any], per_1k: Any) -> None:
    """Dify's own price where it reported one; else an estimate from the workflow's price per 1,000 tokens."""
    row["tokens"], row["elapsed_s"], row["latency_s"] = row["total_tokens"], row["elapsed"], row["latency"]
    estimated = row["price"] is None and per_1k is not None and row["total_tokens"]
    row["price"] = per_1k * row["total_tokens"] / 1000 if estimated else row["price"]
    row["price"] = float(row["price"]) if row["price"] is not None else None
    row["price_estimated"] = bool(estimated)


def _buffered(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Join small pieces into chunks of about CHUNK_BYTES."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# --------------------------------------------------------------------------- JSONL


def _jsonl_chunks(batch: BatchTask) -> Iterator[bytes]:
    lines = (json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in executions(batch))
    return _buffered(lines)


# --------------------------------------------------------------------------- tables (CSV and XLSX)


@dataclass
class _Layout:
    inputs: list[str]  # input keys, first row's order first
    extra: list[str]  # the file's ignored columns, as "extra.<header>" columns after the inputs
    outputs: list[str]  # output keys, union over all rows
    header: list[str]
    more: list[str] = field(default_factory=list)  # output keys past the column limit: one JSON column


def _layout(batch: BatchTask, max_columns: int | None = None) -> _Layout:
    """A first pass over the batch to find every input and output key."""
    input_keys: dict[str, None] = {}
    output_keys: dict[str, None] = {}
    pairs = batch.executions.order_by("index").values_list("inputs", "outputs").iterator(chunk_size=DB_CHUNK)
    for inputs, outputs in pairs:
        input_keys.update(dict.fromkeys(_as_dict(inputs, "input")))
        output_keys.update(dict.fromkeys(_as_dict(outputs, "output")))
    in_cols = [f"input.{k}" if k in FIXED_COLUMNS or k in COST_KEYS else k for k in input_keys]
    # Outputs are always named output.<key>: a reader tells them from the inputs (the file's own columns) at once.
    out_cols = [f"output.{k}" for k in output_keys]
    outputs, more = list(output_keys), []
    room = (
        None
        if max_columns is None
        else max_columns - len(in_cols) - len(batch.extra_columns) - len(FIXED_COLUMNS) - len(COST_KEYS) - 1
    )
    if room is not None and len(out_cols) > room:
        outputs, more, out_cols = outputs[:room], outputs[room:], [*out_cols[:room], "output.more"]
    extra = list(batch.extra_columns or [])
    header = ["row", *in_cols, *(f"extra.{k}" for k in extra), "status", *out_cols, "error_type", "error", "attempts"]
    header += COST_KEYS
    return _Layout(list(input_keys), extra, outputs, header, more)


def _as_dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {name: value}


def _table_rows(batch: BatchTask, layout: _Layout) -> Iterator[list[Any]]:
    for row in executions(batch, cost=True):
        inputs, outputs = _as_dict(row["inputs"], "input"), _as_dict(row["outputs"], "output")
        yield [
            row["row"],
            *(inputs.get(k) for k in layout.inputs),
            *(_as_dict(row.get("extra"), "extra").get(k) for k in layout.extra),
            row["status"],
            *(outputs.get(k) for k in layout.outputs),
            *([{k: outputs[k] for k in layout.more if k in outputs}] if layout.more else []),
            row["error_type"],
            row["error"],
            row["attempts"],
            *(row[key] for key in COST_KEYS),
        ]


def plain_value(value: Any) -> Any:
    """A cell's value: numbers stay numbers, everything else becomes text (JSON for nested values)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value if math.isfinite(value) else str(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def neutralised(text: str) -> str:
    """Text a spreadsheet would evaluate (=, +, -, @, tab, CR first) gets a leading '; numbers like -3.5 do not."""
    if text.startswith(INJECTION_PREFIXES) and not NUMBER_LIKE.fullmatch(text):
        return "'" + text
    return text


def cell_value(value: Any) -> Any:
    """A spreadsheet-safe CSV cell."""
    cell = plain_value(value)
    return neutralised(cell) if isinstance(cell, str) else cell


# --------------------------------------------------------------------------- CSV


def _csv_chunks(batch: BatchTask) -> Iterator[bytes]:
    layout = _layout(batch)
    lines = _csv_lines(chain([layout.header], _table_rows(batch, layout)))
    return _buffered(chain([UTF8_BOM], lines))


def _csv_lines(rows: Iterable[list[Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for cells in rows:
        writer.writerow([cell_value(c) for c in cells])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


# --------------------------------------------------------------------------- XLSX


def _xlsx_chunks(batch: BatchTask) -> Iterator[bytes]:
    fd, name = tempfile.mkstemp(prefix="batch-export-", suffix=".xlsx")
    os.close(fd)
    try:
        _write_xlsx(batch, name)
        with open(name, "rb") as f:
            yield from iter(lambda: f.read(CHUNK_BYTES), b"")
    finally:
        os.unlink(name)


def _write_xlsx(batch: BatchTask, name: str) -> None:
    layout = _layout(batch, max_columns=XLSX_MAX_COLUMNS)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("executions")
    rows = _table_rows(batch, layout)
    sample = list(islice(rows, WIDTH_SAMPLE))
    for number, width in enumerate(_widths(layout.header, sample), start=1):
        sheet.column_dimensions[get_column_letter(number)].width = width
    sheet.freeze_panes = "B2"  # the header and the row number stay in sight
    sheet.append([_xlsx_cell(sheet, c) for c in layout.header])
    for cells in chain(sample, rows):
        sheet.append([_xlsx_cell(sheet, c) for c in cells])
    workbook.save(name)


def _widths(header: list[str], sample: list[list[Any]]) -> list[float]:
    """Column widths from the header and the first rows' text, within bounds (a long text wraps in the cell)."""
    widths = [len(name) for name in header]
    for cells in sample:
        for number, value in enumerate(cells):
            widths[number] = max(widths[number], len(str(plain_value(value)).split("\n", 1)[0][:100]))
    return [min(max(width + 2, 8), 60) for width in widths]


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    """Numbers as numbers, text as a text cell: openpyxl would make '=…' a formula, so no ' is needed here."""
    cell = plain_value(value)
    if not isinstance(cell, str):
        return cell
    text_cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", cell)[:XLSX_MAX_CELL])
    text_cell.data_type = "s"
    return text_cell
