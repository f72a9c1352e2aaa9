"""Reads for the results page: every row of a batch with its inputs and outputs, filtered, searched and paged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db.models import Case, F, QuerySet, Subquery, TextField, Value, When
from django.db.models.functions import Cast, Coalesce, Concat, Length
from django.utils.translation import gettext_lazy as _

from batches.choices import ErrorType, ExecutionStatus
from batches.db.fields import OrderedJSONField
from batches.db.folding import FoldedContains
from batches.display.clipping import clip
from batches.models import BatchTask, Execution

RESULT_FIELDS = (
    "id",
    "batch_id",
    "index",
    "inputs",
    "status",
    "error_type",
    "error",
    "attempt_count",
    "total_tokens",
    "latency",
    "elapsed",
    "price",
    "currency",
    "finished_at",
)
OUTPUT_COLUMN = "output"  # the column of an output that is not a JSON object
# An upstream may answer thousands of distinct keys: a page shows the keys most of its rows have, and the rest of
# each row's answer in one "other outputs" cell, so that a page costs what its rows cost, whatever Dify answered.
MAX_OUTPUT_COLUMNS = 50
MAX_INPUT_COLUMNS = 100  # a file may have 16,000 columns: the rest are on each row's page and in the exports
OTHER_OUTPUTS = _("Other outputs")
OTHER_KEYS_SHOWN = 20  # keys of the "other outputs" cell, before it is clipped anyway
# A stored answer longer than this is not even parsed for a table page (50 answers just under the response limit
# would be half a gigabyte): the database says its size, and the row's own page shows it.
TABLE_OUTPUT_CHARS = 64 * 1024
TOO_LARGE = "…"  # the one output key of an answer too large for a table


@dataclass(frozen=True)
class ResultFilter:
    """What the results page's query string asks for; unknown status or error type values mean "any"."""

    q: str = ""
    status: str = ""
    error_type: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> ResultFilter:
        status = params.get("status", "")
        error_type = params.get("error_type", "")
        return cls(
            q=params.get("q", "").strip()[:200],
            status=status if status in ExecutionStatus.values else "",
            error_type=error_type if error_type in ErrorType.values else "",
        )

    def as_query(self) -> dict[str, str]:
        """The non-empty parameters, for links that keep the filter."""
        return {key: value for key, value in vars(self).items() if value}


def search_text() -> Concat:
    """Inputs, outputs and error as one text, as stored (JSON written without escapes: see OrderedJSONField)."""
    text: Any = TextField()
    return Concat(
        Cast("inputs", text),
        Value("\n", output_field=text),
        Coalesce(Cast("outputs", text), Value("", output_field=text)),
        Value("\n", output_field=text),
        Cast("error", text),
        output_field=text,
    )


def result_rows(batch_id: int, wanted: ResultFilter) -> QuerySet[Execution]:
    """A batch's rows in index order, narrowed by status, error type and a case-insensitive text search."""
    rows = Execution.objects.filter(batch_id=batch_id)
    if wanted.status:
        rows = rows.filter(status=wanted.status)
    if wanted.error_type:
        rows = rows.filter(error_type=wanted.error_type)
    if wanted.q:
        rows = rows.filter(FoldedContains(search_text(), wanted.q))
    return bounded_outputs(rows.only(*RESULT_FIELDS)).order_by("index")


def bounded_outputs(rows: QuerySet[Execution]) -> QuerySet[Execution]:
    """The rows without their stored outputs, with `outputs_chars` (the stored text's length) and `table_outputs`
    (the outputs when at most TABLE_OUTPUT_CHARS long, else None): see `shown_outputs`."""
    text: Any = TextField()
    small = When(outputs_chars__lte=TABLE_OUTPUT_CHARS, then=F("outputs"))
    return rows.defer("outputs").annotate(
        outputs_chars=Coalesce(Length(Cast("outputs", text)), Value(0)),
        table_outputs=Case(small, default=Value(None), output_field=OrderedJSONField()),
    )


def shown_outputs(rows: list[Execution]) -> list[Execution]:
    """Rows read by `bounded_outputs`, each with `outputs` set to what a table shows: the outputs, or for an answer
    too large, one TOO_LARGE key saying so."""
    note = _("Answer of %(size)s KB: open the row to see it.")
    for row in rows:
        chars: int = getattr(row, "outputs_chars", 0)
        large = chars > TABLE_OUTPUT_CHARS
        row.outputs = {TOO_LARGE: str(note) % {"size": chars // 1024}} if large else getattr(row, "table_outputs", None)
    return rows


@dataclass
class ResultPage:
    """One page of rows. `count` is None for a search: counting every match would scan the batch twice."""

    rows: list[Execution]
    number: int
    size: int
    has_next: bool
    count: int | None
    input_columns: list[str] = field(default_factory=list)
    output_columns: list[str] = field(default_factory=list)
    more_outputs: bool = False  # some rows have keys beyond output_columns
    hidden_inputs: int = 0  # input columns past MAX_INPUT_COLUMNS, not shown

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def pages(self) -> int | None:
        return None if self.count is None else max(1, -(-self.count // self.size))


def page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 10**6))
    except ValueError:
        return 1


def result_page(batch: BatchTask, wanted: ResultFilter, *, number: int, size: int) -> ResultPage:
    """Rows of one page in two queries at most (the count, unless searching; the rows), whatever the batch size."""
    rows = result_rows(batch.pk, wanted)
    count = None if wanted.q else (rows.count() if wanted.status or wanted.error_type else batch.total)
    if count is not None:
        number = min(number, max(1, -(-count // size)))
    start = (number - 1) * size
    found = shown_outputs(list(_from(rows, wanted, start)[: size + 1]))
    page = ResultPage(found[:size], number, size, len(found) > size, count)
    page.input_columns, page.hidden_inputs = shown_columns(input_columns(batch.columns, page.rows))
    page.output_columns, page.more_outputs = output_columns(page.rows)
    return page


def _from(rows: QuerySet[Execution], wanted: ResultFilter, start: int) -> QuerySet[Execution]:
    """The rows from the `start`-th on. Rows are numbered 0, 1, 2… in a batch, so without a filter that is a range
    of the (batch, index) index; with a status or error type the first index is found on the (batch, status, index)
    index alone, instead of OFFSET reading `start` whole rows. A search has no index to skip on."""
    if wanted.q:
        return rows[start:]
    if not (wanted.status or wanted.error_type):
        return rows.filter(index__gte=start)
    first = rows.order_by("index").values("index")[start : start + 1]
    return rows.filter(index__gte=Subquery(first))


def input_columns(columns: list[str], rows: Iterable[Execution]) -> list[str]:
    """The batch's input columns, then any key a row has beyond them (a staff edit may add one)."""
    return _ordered_keys([columns, *(row.inputs for row in rows if isinstance(row.inputs, dict))])


def shown_columns(columns: list[str]) -> tuple[list[str], int]:
    """The input columns a table shows, and how many more it leaves out."""
    return columns[:MAX_INPUT_COLUMNS], max(0, len(columns) - MAX_INPUT_COLUMNS)


def output_columns(rows: Iterable[Execution], limit: int = MAX_OUTPUT_COLUMNS) -> tuple[list[str], bool]:
    """The `limit` output keys most rows have (ties: first seen first), in order of first appearance on the page;
    a non-object output has its own column. Also whether any row has a key beyond them."""
    counts: Counter[str] = Counter()
    for row in rows:
        if isinstance(row.outputs, dict):
            counts.update(row.outputs.keys())
        elif row.outputs is not None:
            counts[OUTPUT_COLUMN] += 1
    order = {key: n for n, key in enumerate(counts)}  # a Counter keeps the order keys were first counted in
    kept = sorted(counts, key=lambda key: (-counts[key], order[key]))[:limit]
    return sorted(kept, key=order.__getitem__), len(counts) > len(kept)


def _ordered_keys(groups: Iterable[Iterable[str]]) -> list[str]:
    return list(dict.fromkeys(key for group in groups for key in group))


def output_value(row: Execution, key: str) -> Any:
    if isinstance(row.outputs, dict):
        return row.outputs.get(key)
    return row.outputs if key == OUTPUT_COLUMN else None


def other_outputs(row: Execution, shown: Iterable[str]) -> dict[str, Any] | None:
    """A few of the row's output keys not in `shown`, for the "other outputs" cell (None when it has none)."""
    if not isinstance(row.outputs, dict):
        return None
    taken = set(shown)
    rest = dict(islice(((k, v) for k, v in row.outputs.items() if k not in taken), OTHER_KEYS_SHOWN + 1))
    if len(rest) > OTHER_KEYS_SHOWN:
        rest.popitem()
        rest["…"] = "…"
    return clip(rest)[0] if rest else None  # a value may be megabytes
