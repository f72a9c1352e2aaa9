"""A comparison of two batches as CSV or XLSX: one line per pair, inputs, both outputs and what differs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from openpyxl import Workbook

from batches import exporters
from batches.models import BatchTask, Execution
from batches.selectors_compare import Pair, RawPair, compare, differing_keys, page_rows
from batches.selectors_results import input_columns, output_columns, output_value

FORMATS = ("csv", "xlsx")
CHUNK = 1000  # pairs whose rows are read at once


def content_type(fmt: str) -> str:
    return exporters.content_type(fmt)


def file_name(batch_a: BatchTask, batch_b: BatchTask, fmt: str) -> str:
    return f"compare-{batch_a.pk}-{batch_b.pk}.{fmt}"


def export_chunks(batch_a: BatchTask, batch_b: BatchTask, fmt: str, *, differences: bool = False) -> Iterator[bytes]:
    pairs = compare(batch_a, batch_b).only(differences)
    if fmt == "xlsx":
        return _xlsx_chunks(batch_a, batch_b, pairs)
    return exporters._buffered(chain([exporters.UTF8_BOM], exporters._csv_lines(table(batch_a, batch_b, pairs))))


def table(batch_a: BatchTask, batch_b: BatchTask, pairs: list[RawPair]) -> Iterator[list[Any]]:
    """The header, then one line per pair, reading the rows a thousand pairs at a time."""
    in_cols, out_cols = _columns(batch_a, pairs)
    a_label, b_label = f"#{batch_a.pk}", f"#{batch_b.pk}"
    yield [
        f"row {a_label}",
        f"row {b_label}",
        "result",
        *in_cols,
        f"status {a_label}",
        f"status {b_label}",
        *(f"{key} {label}" for key in out_cols for label in (a_label, b_label)),
        "differing keys",
    ]
    for chunk in _chunks(pairs):
        rows = page_rows(chunk)
        for pair in chunk:
            yield _line(pair, rows.get(pair.a or 0), rows.get(pair.b or 0), in_cols, out_cols)


def _columns(batch_a: BatchTask, pairs: list[RawPair]) -> tuple[list[str], list[str]]:
    """Every output key of the compared rows: a first pass over them, a thousand at a time."""
    outputs: dict[str, None] = {}
    inputs: list[str] = list(batch_a.columns)
    for chunk in _chunks(pairs):
        rows = list(page_rows(chunk).values())
        inputs = input_columns(inputs, rows)
        outputs.update(dict.fromkeys(output_columns(rows)))
    return inputs, list(outputs)


def _chunks(pairs: list[RawPair]) -> Iterator[list[Pair]]:
    it = iter(pairs)
    while chunk := list(islice(it, CHUNK)):
        yield [Pair(*pair) for pair in chunk]


def _line(pair: Pair, a: Execution | None, b: Execution | None, in_cols: list[str], out_cols: list[str]) -> list[Any]:
    either = a or b
    inputs = either.inputs if either and isinstance(either.inputs, dict) else {}
    changed = differing_keys(a.outputs, b.outputs) if a and b else set()
    return [
        a.index + 1 if a else None,
        b.index + 1 if b else None,
        pair.kind,
        *(inputs.get(key) for key in in_cols),
        a.status if a else None,
        b.status if b else None,
        *(output_value(row, key) if row else None for key in out_cols for row in (a, b)),
        ", ".join(key for key in out_cols if key in changed),
    ]


def _xlsx_chunks(batch_a: BatchTask, batch_b: BatchTask, pairs: list[RawPair]) -> Iterator[bytes]:
    fd, name = tempfile.mkstemp(prefix="batch-compare-", suffix=".xlsx")
    os.close(fd)
    try:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("comparison")
        for cells in table(batch_a, batch_b, pairs):
            sheet.append([exporters._xlsx_cell(sheet, c) for c in cells])
        workbook.save(name)
        with open(name, "rb") as f:
            yield from iter(lambda: f.read(exporters.CHUNK_BYTES), b"")
    finally:
        os.unlink(name)
