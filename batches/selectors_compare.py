"""Reads for comparing two batches: rows paired by their inputs, outputs side by side.

Two rows pair when their inputs are equal as JSON values (key order aside); among rows with equal inputs the
first of one batch pairs with the first of the other, and so on. A pair is "same" when both rows ended in the same
status with equal outputs. The pairing works on fingerprints (one short hash of the inputs and one of the result
per row), so a page of a 100,000-row comparison reads two narrow columns and then only that page's rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models.expressions import RawSQL

from batches.models import Execution

SAME = "same"
DIFFERENT = "different"
ONLY_A = "only_a"
ONLY_B = "only_b"
KINDS = (SAME, DIFFERENT, ONLY_A, ONLY_B)
PAGE_FIELDS = ("id", "batch_id", "index", "inputs", "status", "outputs", "error_type", "error")


@dataclass(frozen=True)
class Pair:
    a: int | None  # Execution ids
    b: int | None
    kind: str


@dataclass
class Comparison:
    pairs: list[Pair]
    counts: dict[str, int]

    def only(self, differences: bool) -> list[Pair]:
        return [pair for pair in self.pairs if pair.kind != SAME] if differences else self.pairs


def compare(batch_a: int, batch_b: int) -> Comparison:
    """Every pair, in the order of batch A's rows, then batch B's rows that have no partner."""
    rows_b: dict[tuple[str, int], tuple[int, str]] = {}
    for row_id, key, seen, result in _numbered(fingerprints(batch_b)):
        rows_b[(key, seen)] = (row_id, result)
    pairs = []
    for row_id, key, seen, result in _numbered(fingerprints(batch_a)):
        partner = rows_b.pop((key, seen), None)
        if partner is None:
            pairs.append(Pair(row_id, None, ONLY_A))
        else:
            pairs.append(Pair(row_id, partner[0], SAME if partner[1] == result else DIFFERENT))
    pairs.extend(Pair(None, row_id, ONLY_B) for row_id, _ in rows_b.values())  # dicts keep B's order
    counts = dict.fromkeys(KINDS, 0)
    for pair in pairs:
        counts[pair.kind] += 1
    return Comparison(pairs, counts)


def _numbered(rows: Iterator[tuple[int, str, str]]) -> Iterator[tuple[int, str, int, str]]:
    """Each row with how many earlier rows of its batch had the same inputs."""
    seen: dict[str, int] = defaultdict(int)
    for row_id, key, result in rows:
        yield row_id, key, seen[key], result
        seen[key] += 1


def fingerprints(batch_id: int) -> Iterator[tuple[int, str, str]]:
    """(id, inputs hash, status-and-outputs hash) per row in index order."""
    rows = Execution.objects.filter(batch_id=batch_id).order_by("index")
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Execution._meta.db_table)
        key = RawSQL(f"md5({_canonical(table + '.inputs')})", [])  # noqa: S611 - no user input
        result = RawSQL(f"md5({table}.status || ':' || coalesce({_canonical(table + '.outputs')}, ''))", [])  # noqa: S611
        yield from rows.annotate(k=key, r=result).values_list("id", "k", "r").iterator(chunk_size=5000)
        return
    for row_id, inputs, status, outputs in rows.values_list("id", "inputs", "status", "outputs").iterator(5000):
        yield row_id, _digest(inputs), status + ":" + _digest(outputs)


def _canonical(column: str) -> str:
    """jsonb puts keys in one order, so {"a":1,"b":2} and {"b":2,"a":1} hash alike; jsonb refuses \\u0000, so
    text holding one is hashed as stored."""
    return f"CASE WHEN {column}::text LIKE '%%\\\\u0000%%' THEN {column}::text ELSE {column}::jsonb::text END"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def page_rows(pairs: list[Pair]) -> dict[int, Execution]:
    """The rows of a page of pairs, by id, in one query."""
    ids = [row_id for pair in pairs for row_id in (pair.a, pair.b) if row_id is not None]
    return {row.pk: row for row in Execution.objects.filter(pk__in=ids).only(*PAGE_FIELDS)}


def differing_keys(a: Any, b: Any) -> set[str]:
    """Output keys whose values differ (a key missing on one side differs)."""
    a, b = _as_dict(a), _as_dict(b)
    return {key for key in a.keys() | b.keys() if a.get(key, _MISSING) != b.get(key, _MISSING)}


_MISSING = object()


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"output": value}
