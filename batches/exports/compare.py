"""A comparison of two batches as CSV or XLSX: one line per pair, inputs, both outputs and what differs."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any

from openpyxl import Workbook

from batches.exports import batches as exporters
from batches.models import BatchTask, Execution
from batches.selectors.compare import Match, Pair, RawPair, compare, differing_keys, page_rows
from batches.selectors.results import OUTPUT_COLUMN, input_columns, output_value

FORMATS = ("csv", "xlsx")
CHUNK = 1000  # pairs whose rows are read at once
# Output keys are counted in a first pass; an upstream answering thousands of distinct keys would make a sheet of
# thousands of columns and a counter of millions of keys, so both are bounded: the most common keys get columns,
# and the rest of each answer goes whole into one JSON column per side.
MAX_OUTPUT_COLUMNS = 200
KEYS_COUNTED = 10_000  # distinct keys counted; keys first seen after that go in the JSON column
OTHER = "other outputs"


def content_type(fmt: str) -> str:
    return exporters.content_type(fmt)


def file_name(batch_a: BatchTask, batch_b: BatchTask, fmt: str) -> str:
    return f"compare-{batch_a.pk}-{batch_b.pk}.{fmt}"


def export_chunks(
    batch_a: BatchTask,
    batch_b: BatchTask,
    fmt: str,
    *,
    differences: bool = False,
    match: Match = Match(),  # noqa: B008 - frozen
) -> Iterator[bytes]:
    pairs = compare(batch_a, batch_b, match).only(differences)
    if fmt == "xlsx":
        return _xlsx_chunks(batch_a, batch_b, pairs)
    return exporters._buffered(chain([exporters.UTF8_BOM], exporters._csv_lines(table(batch_a, batch_b, pairs))))


def table(batch_a: BatchTask, batch_b: BatchTask, pairs: list[RawPair]) -> Iterator[list[Any]]:
    """The header, then one line per pair, reading the rows a thousand pairs at a time."""
    in_cols, out_cols, more = _columns(batch_a, pairs)
    a_label, b_label = f"#{batch_a.pk}", f"#{batch_b.pk}"
    yield [
        f"row {a_label}",
        f"row {b_label}",
        "result",
        *in_cols,
        f"status {a_label}",
        f"status {b_label}",
        *(f"{key} {label}" for key in [*out_cols, *([OTHER] if more else [])] for label in (a_label, b_label)),
        "differing keys",
    ]
    for chunk in _chunks(pairs):
        rows = page_rows(chunk)
        for pair in chunk:
            yield _line(pair, rows.get(pair.a or 0), rows.get(pair.b or 0), in_cols, (out_cols, more))


def _columns(batch_a: BatchTask, pairs: list[RawPair]) -> tuple[list[str], list[str], bool]:
    """The most common output keys of the compared rows (a first pass over them, a thousand at a time), and whether
    any row has others."""
    counts: Counter[str] = Counter()
    more = False
    inputs: list[str] = list(batch_a.columns)
    for chunk in _chunks(pairs):
        rows = list(page_rows(chunk).values())
        inputs = input_columns(inputs, rows)
        for key in (key for row in rows for key in _keys(row.outputs)):
            if key in counts or len(counts) < KEYS_COUNTED:
                counts[key] += 1
            else:
                more = True
    order = {key: n for n, key in enumerate(counts)}
    kept = sorted(
        sorted(counts, key=lambda key: (-counts[key], order[key]))[:MAX_OUTPUT_COLUMNS], key=order.__getitem__
    )
    return inputs, kept, more or len(counts) > len(kept)


def _keys(outputs: Any) -> Iterable[str]:
    if isinstance(outputs, dict):
        return outputs.keys()
    return [] if outputs is None else [OUTPUT_COLUMN]


def _chunks(pairs: list[RawPair]) -> Iterator[list[Pair]]:
    it = iter(pairs)
    while chunk := list(islice(it, CHUNK)):
        yield [Pair(*pair) for pair in chunk]


def _line(
    pair: Pair, a: Execution | None, b: Execution | None, in_cols: list[str], outs: tuple[list[str], bool]
) -> list[Any]:
    either = a or b
    inputs = either.inputs if either and isinstance(either.inputs, dict) else {}
    changed = differing_keys(a.outputs, b.outputs) if a and b else set()
    out_cols, more = outs
    return [
        a.index + 1 if a else None,
        b.index + 1 if b else None,
        pair.kind,
        *(inputs.get(key) for key in in_cols),
        a.status if a else None,
        b.status if b else None,
        *(output_value(row, key) if row else None for key in out_cols for row in (a, b)),
        *((_others(a, out_cols), _others(b, out_cols)) if more else ()),
        ", ".join(sorted(changed, key=_position(out_cols))),
    ]


def _others(row: Execution | None, shown: list[str]) -> dict[str, Any] | None:
    """Every output key of the row without a column of its own (the export keeps the whole answer)."""
    if row is None or not isinstance(row.outputs, dict):
        return None
    taken = set(shown)
    return {key: value for key, value in row.outputs.items() if key not in taken} or None


def _position(columns: list[str]) -> Any:
    """Differing keys in column order, then the others by name."""
    where = {key: n for n, key in enumerate(columns)}
    return lambda key: (where.get(key, len(where)), key)


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
