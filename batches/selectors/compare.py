"""Reads for comparing two batches: rows paired by their inputs (or row number, or one input column), outputs side
by side.

Two rows pair when their inputs are equal as JSON values (key order aside); among rows with equal inputs the
first of one batch pairs with the first of the other, and so on. Staff may pair rows by row number instead (two
files of the same rows with other prompts), or by the value of one input column (a product's SKU), the same way.
A pair is "same" when both rows ended in the same status with equal outputs (key order aside).

At 100,000 rows the pairing must take well under a second, so it works on 64-bit hashes of the JSON as stored
(PostgreSQL hashes it in the query; parsing every row's JSON would cost seconds). The stored text of equal values
is almost always equal (a rerun copies it; an import writes the columns in the file's order), and the rare rows it
misses are checked again on their values: rows left without a partner are paired by their parsed inputs, and pairs
whose stored outputs differ are compared on their parsed outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, F, Func, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Concat, Length
from django.http import Http404
from django.utils.translation import gettext

from batches.choices import BatchStatus
from batches.models import BatchTask, Execution
from batches.selectors.results import bounded_outputs, shown_outputs

SAME = "same"
DIFFERENT = "different"
ONLY_A = "only_a"
ONLY_B = "only_b"
KINDS = (SAME, DIFFERENT, ONLY_A, ONLY_B)
PAGE_FIELDS = (
    "id",
    "batch_id",
    "index",
    "inputs",
    "status",
    "outputs",
    "error_type",
    "error",
    "total_tokens",
    "latency",
)
CHUNK = 2000
FINGERPRINTS_KEPT = 3600  # seconds


class Pair(NamedTuple):
    a: int | None  # Execution ids
    b: int | None
    kind: str


# The pairing handles 200,000 rows per request, so its rows are plain tuples (a NamedTuple costs a second there):
# a fingerprint is (index, id, inputs hash, status-and-outputs hash, outputs length), a pair (id A, id B, kind).
Fingerprint = tuple[int, int, Any, Any, int]
MAYBE = "maybe"  # outputs stored as texts of equal length that differ: equal values in another key order?
RawPair = tuple[int | None, int | None, str]


@dataclass(frozen=True)
class Match:
    """How rows pair: by equal inputs (the default), by row number, or by the value of one input column."""

    by: str = "inputs"  # "inputs" | "row" | "key"
    key: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, Any], columns: list[str]) -> Match:
        """From `?match=row` or `?match=key:COLUMN`; anything else (a column the batches lack too) means inputs."""
        value = str(params.get("match", ""))
        if value == "row":
            return cls("row")
        if value.startswith("key:") and value[4:] in columns:
            return cls("key", value[4:])
        return cls()

    @property
    def value(self) -> str:
        return f"key:{self.key}" if self.by == "key" else self.by

    def as_query(self) -> dict[str, str]:
        return {} if self.by == "inputs" else {"match": self.value}


class Comparison(NamedTuple):
    pairs: list[RawPair]
    counts: dict[str, int]

    def only(self, differences: bool) -> list[RawPair]:
        return [pair for pair in self.pairs if pair[2] != SAME] if differences else self.pairs


def compare(batch_a: BatchTask, batch_b: BatchTask, match: Match = Match()) -> Comparison:  # noqa: B008 - frozen
    """Every pair, in the order of batch A's rows, then batch B's rows that have no partner, in their order."""
    pairs, left_a, left_b = _pair(kept_fingerprints(batch_a, match), kept_fingerprints(batch_b, match))
    if left_a and left_b and match.by == "inputs":
        pairs, left_b = _pair_again(pairs, left_a, left_b)
    pairs = _confirm_differences(pairs)
    pairs.extend((None, row[1], ONLY_B) for row in left_b)
    counts = dict.fromkeys(KINDS, 0)
    for pair in pairs:
        counts[pair[2]] += 1
    return Comparison(pairs, counts)


def _pair(rows_a: list[Fingerprint], rows_b: list[Fingerprint]) -> tuple[list[RawPair], list[Fingerprint], list]:
    """Pairs by key in order of occurrence; A's rows without a partner; B's rows without one, in index order."""
    first = {row[2]: row for row in reversed(rows_b)}  # the earliest row of each key wins
    if len(first) < len(rows_b):
        return _pair_repeated(rows_a, rows_b)
    pairs: list[RawPair] = []
    left_a = []
    for row in rows_a:
        partner = first.pop(row[2], None)
        if partner is None:
            pairs.append((row[1], None, ONLY_A))
            left_a.append(row)
        else:
            pairs.append((row[1], partner[1], _kind(row, partner)))
    return pairs, left_a, sorted(first.values())


def _kind(row: Fingerprint, partner: Fingerprint) -> str:
    if row[3] == partner[3]:
        return SAME
    # The same values in another key order make a text of the same length; different answers seldom do.
    return MAYBE if row[4] == partner[4] else DIFFERENT


def _pair_repeated(rows_a: list[Fingerprint], rows_b: list[Fingerprint]) -> tuple[list[RawPair], list, list]:
    """_pair when B repeats inputs: a queue of rows per key (slower, so only then)."""
    waiting: dict[Any, list[Fingerprint]] = {}
    for row in reversed(rows_b):  # reversed, so that pop() takes the earliest
        waiting.setdefault(row[2], []).append(row)
    pairs: list[RawPair] = []
    left_a = []
    for row in rows_a:
        queue = waiting.get(row[2])
        if queue:
            partner = queue.pop()
            pairs.append((row[1], partner[1], _kind(row, partner)))
        else:
            pairs.append((row[1], None, ONLY_A))
            left_a.append(row)
    return pairs, left_a, sorted(row for queue in waiting.values() for row in queue)


def _pair_again(
    pairs: list[RawPair], left_a: list[Fingerprint], left_b: list[Fingerprint]
) -> tuple[list[RawPair], list[Fingerprint]]:
    """Rows whose stored inputs differ in text only (key order): paired by their parsed inputs."""
    inputs = _values("inputs", [row[1] for row in (*left_a, *left_b)])
    found, _, still_b = _pair(
        [(i, row_id, _canonical(inputs[row_id]), *rest) for i, row_id, _, *rest in left_a],
        [(i, row_id, _canonical(inputs[row_id]), *rest) for i, row_id, _, *rest in left_b],
    )
    late = {pair[0]: pair for pair in found if pair[1] is not None}
    return [late.get(pair[0], pair) if pair[1] is None else pair for pair in pairs], still_b


def _confirm_differences(pairs: list[RawPair]) -> list[RawPair]:
    """Pairs whose stored outputs may differ in key order only: the same if their values are equal."""
    ids = [row_id for a, b, kind in pairs if kind == MAYBE for row_id in (a, b)]
    rows = _results([row_id for row_id in ids if row_id is not None]) if ids else {}
    return [
        (a, b, (SAME if rows[a] == rows[b] else DIFFERENT)) if kind == MAYBE else (a, b, kind)  # type: ignore[index]
        for a, b, kind in pairs
    ]


def _results(ids: list[int]) -> dict[int, Any]:
    """Status and outputs by id, compared by value: jsonb on PostgreSQL (key order aside), parsed JSON elsewhere."""
    if connection.vendor != "postgresql":
        return _values("outputs", ids, "status")
    table = connection.ops.quote_name(Execution._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, status, {_jsonb('outputs')} FROM {table} WHERE id = ANY(%s)",  # noqa: S608 - no user input
            [ids],
        )
        return {row_id: (status, outputs) for row_id, status, outputs in cursor.fetchall()}


def _jsonb(column: str) -> str:
    """The column as jsonb text (one key order), or as stored when jsonb refuses it (a \\u0000 in a string)."""
    return f"CASE WHEN {column}::text LIKE '%%\\\\u0000%%' THEN {column}::text ELSE {column}::jsonb::text END"


def _values(field: str, ids: list[int], *more: str) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for start in range(0, len(ids), CHUNK):
        rows = Execution.objects.filter(pk__in=ids[start : start + CHUNK]).values_list("id", field, *more)
        found.update((row[0], row[1:] if more else row[1]) for row in rows)
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def kept_fingerprints(batch: BatchTask, match: Match = Match()) -> list[Fingerprint]:  # noqa: B008 - frozen
    """An ended batch's fingerprints, kept in the cache for an hour: its rows change only through a retry, which
    reopens the batch (and a later end has another finished_at, so another key). PostgreSQL only: elsewhere the
    hashes are Python's, which differ between processes sharing a cache."""
    ended = batch.status in (BatchStatus.FINISHED, BatchStatus.CANCELLED) and batch.finished_at is not None
    if not ended or connection.vendor != "postgresql":
        return fingerprints(batch.pk, match)
    ended_at = batch.finished_at.isoformat()  # type: ignore[union-attr]
    key = f"batches:fingerprints:{batch.pk}:{batch.status}:{ended_at}:{match.value}"
    found = cache.get(key)
    if found is None:
        found = fingerprints(batch.pk, match)
        cache.set(key, found, FINGERPRINTS_KEPT)
    return found


def fingerprints(batch_id: int, match: Match = Match()) -> list[Fingerprint]:  # noqa: B008 - frozen
    """(index, id, key hash, status-and-outputs hash, outputs length) of every row, in index order; the key is the
    inputs, the row number or one input column's value (as text), as `match` says.

    Read with a plain cursor: Django's per-value converters would cost more than the query itself.
    """
    key: Any = _match_key(match)
    result: Any = _result_text()
    size = Coalesce(Length(Cast("outputs", TextField())), Value(0))  # cheaper than the length of `result`
    if connection.vendor == "postgresql":
        key, result = (key if match.by == "row" else _pg_hash(key)), _pg_hash(result)
    rows = Execution.objects.filter(batch_id=batch_id).order_by().annotate(key=key, result=result, size=size)
    sql, params = rows.values_list("index", "id", "key", "result", "size").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    if connection.vendor != "postgresql":
        found = [(index, row_id, hash(key), hash(result), size) for index, row_id, key, result, size in found]
    found.sort()  # in Python: cheaper than the database's sort of 100,000 rows, which spills to disk
    return found


def _match_key(match: Match) -> Any:
    if match.by == "row":
        return F("index")
    if match.by == "key":
        return Cast(KeyTextTransform(match.key, "inputs"), TextField())  # "7" and 7 match, as people read them
    return Cast("inputs", TextField())


def _result_text() -> Concat:
    text: Any = TextField()
    outputs = Coalesce(Cast("outputs", text), Value("", output_field=text))
    return Concat(Cast(F("status"), text), Value(":", output_field=text), outputs, output_field=text)


def _pg_hash(expression: Any) -> Func:
    """PostgreSQL's 64-bit text hash (the one hash partitioning uses): ten times cheaper than md5() here."""
    return Func(expression, Value(0), function="hashtextextended", output_field=BigIntegerField())


def page_rows(pairs: list[Pair], *, bounded: bool = False) -> dict[int, Execution]:
    """The rows of a page of pairs, by id, in one query; `bounded`: answers too large for a table are not read
    (see selectors_results.bounded_outputs), as on the page; an export reads them whole."""
    ids = [row_id for pair in pairs for row_id in (pair[0], pair[1]) if row_id is not None]
    rows = Execution.objects.filter(pk__in=ids).only(*PAGE_FIELDS)
    if bounded:
        return {row.pk: row for row in shown_outputs(list(bounded_outputs(rows)))}
    return {row.pk: row for row in rows}


def differing_keys(a: Any, b: Any) -> set[str]:
    """Output keys whose values differ (a key missing on one side differs)."""
    a, b = _as_dict(a), _as_dict(b)
    return {key for key in a.keys() | b.keys() if a.get(key, _MISSING) != b.get(key, _MISSING)}


_MISSING = object()


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"output": value}


def batch_pair_or_404(a: int, b: int) -> tuple[BatchTask, BatchTask]:
    """The two batches of the compare page, with their workflows, in one query."""
    found = BatchTask.objects.select_related("workflow").in_bulk([a, b])
    if a not in found or b not in found:
        raise Http404(gettext("No such batch."))
    return found[a], found[b]


def compare_candidates(batch: BatchTask, limit: int = 100) -> list[tuple[int, str]]:
    """(id, name) of the newest other batches, for the batch page's "Compare with" choice."""
    return list(BatchTask.objects.exclude(pk=batch.pk).order_by("-pk").values_list("pk", "name")[:limit])
