"""Two batches side by side: rows paired by inputs (or row number, or a key column), outputs compared, the changed
words marked, and the comparison exported. Any two batches can be chosen on the batch list or a batch page."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from batches.choices import ExecutionStatus
from batches.display.worddiff import word_diff
from batches.exports import compare as compare_export
from batches.models import BatchTask, Execution
from batches.selectors.compare import (
    Comparison,
    Match,
    Pair,
    batch_pair_or_404,
    compare,
    differing_keys,
    page_rows,
)
from batches.selectors.cost import compare_costs, row_delta
from batches.selectors.results import (
    OTHER_OUTPUTS,
    input_columns,
    other_outputs,
    output_columns,
    output_value,
    page_number,
    shown_columns,
)
from batches.views.downloads import streamed
from batches.views.presenters import Cell, cell

COMPARE_PAGE_SIZE = 50
DIFFS_PER_PAGE = 100  # texts whose changed words are marked on one page: each costs a word diff


@dataclass
class Side:
    execution: Execution | None
    outputs: list[Cell]
    url: str = ""
    number: int = 0
    status_label: str = ""


@dataclass
class PairRow:
    pair: Pair
    inputs: list[Cell]
    a: Side
    b: Side
    delta: str = ""  # B − A tokens and latency (issue 31)


def _pair_rows(pairs: list[Pair], columns: list[str]) -> tuple[list[PairRow], tuple[list[str], int], list[str]]:
    rows = page_rows(pairs, bounded=True)
    present = list(rows.values())
    (in_cols, hidden), (out_cols, more) = shown_columns(input_columns(columns, present)), output_columns(present)
    result = []
    budget = [DIFFS_PER_PAGE]
    for pair in pairs:
        a, b = rows.get(pair.a or 0), rows.get(pair.b or 0)
        either = a or b
        inputs = either.inputs if either else {}
        changed = differing_keys(a.outputs, b.outputs) if a and b else set()
        row = PairRow(
            pair, _inputs(inputs, in_cols, a, b), _side(a, out_cols, changed, more), _side(b, out_cols, changed, more)
        )
        row.delta = row_delta(a, b)
        if a and b and changed:
            _mark_words(row, (a, b), out_cols, budget)
        result.append(row)
    return result, (in_cols, hidden), [*out_cols, str(OTHER_OUTPUTS)] if more else out_cols


def _inputs(inputs: Any, columns: list[str], a: Execution | None, b: Execution | None) -> list[Cell]:
    """A's inputs (B's for a row only in B); marked where B's differ, as they may when rows match by row or key."""
    cells = [cell(inputs.get(key) if isinstance(inputs, dict) else None) for key in columns]
    if a and b and a.inputs != b.inputs and isinstance(a.inputs, dict) and isinstance(b.inputs, dict):
        for key, value in zip(columns, cells, strict=True):
            value.differs = a.inputs.get(key) != b.inputs.get(key)
    return cells


def _side(row: Execution | None, columns: list[str], changed: set[str], more: bool) -> Side:
    cells = [cell(output_value(row, key)) if row else Cell("", False) for key in columns]
    for key, value in zip(columns, cells, strict=True):
        value.differs = key in changed
    if more:
        cells.append(cell(other_outputs(row, columns)) if row else Cell("", False))
        cells[-1].differs = bool(changed.difference(columns))
    if row is None:
        return Side(None, cells)
    url = reverse("batches:execution_detail", args=[row.pk])
    return Side(row, cells, url, row.index + 1, str(ExecutionStatus(row.status).label))


def _mark_words(row: PairRow, ab: tuple[Execution, Execution], columns: list[str], budget: list[int]) -> None:
    """The changed words of each differing text output, while the page's budget of word diffs lasts."""
    for n, key in enumerate(columns):
        text_a, text_b = output_value(ab[0], key), output_value(ab[1], key)
        if row.a.outputs[n].differs and isinstance(text_a, str) and isinstance(text_b, str) and budget[0] > 0:
            budget[0] -= 1
            row.a.outputs[n].html, row.b.outputs[n].html = word_diff(text_a, text_b)


def match_choices(batch_a: BatchTask, batch_b: BatchTask) -> list[tuple[str, str]]:
    """What rows may be matched by: inputs, row number, or a column both batches have (A's alone if none)."""
    shared = [column for column in batch_a.columns if column in batch_b.columns] or list(batch_a.columns)
    column = gettext("column “%(column)s”")
    return [
        ("inputs", gettext("equal inputs")),
        ("row", gettext("row number")),
        *((f"key:{name}", column % {"column": name}) for name in shared),
    ]


def _page(comparison: Comparison, wanted: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """One page of pairs, with the links that keep the "only differences" and match choices."""
    shown = comparison.only(wanted["differences"])
    pages = max(1, -(-len(shown) // COMPARE_PAGE_SIZE))
    number = min(page_number(wanted["page"]), pages)
    start = (number - 1) * COMPARE_PAGE_SIZE
    rows, (in_cols, hidden), out_cols = _pair_rows(
        [Pair(*raw) for raw in shown[start : start + COMPARE_PAGE_SIZE]], columns
    )
    keep: dict[str, str | int] = {"only": "differences"} if wanted["differences"] else {}
    keep |= wanted["match"].as_query()
    return {
        "rows": rows,
        "input_columns": in_cols,
        "hidden_inputs": hidden,
        "output_columns": out_cols,
        "number": number,
        "pages": pages,
        "shown": len(shown),
        "previous_link": "?" + urlencode({**keep, "page": number - 1}) if number > 1 else "",
        "next_link": "?" + urlencode({**keep, "page": number + 1}) if number < pages else "",
        "export_query": "?" + urlencode(keep) if keep else "",
    }


def _wanted(request: HttpRequest, batch_a: BatchTask, batch_b: BatchTask) -> dict[str, Any]:
    shared = [column for column, _ in match_choices(batch_a, batch_b) if column.startswith("key:")]
    match = Match.from_query(request.GET, [column[4:] for column in shared])
    return {"differences": request.GET.get("only") == "differences", "match": match, "page": request.GET.get("page")}


@staff_member_required
@require_GET
def batch_compare(request: HttpRequest, a: int, b: int) -> HttpResponse:
    batch_a, batch_b = batch_pair_or_404(a, b)
    wanted = _wanted(request, batch_a, batch_b)
    comparison = compare(batch_a, batch_b, wanted["match"])
    context = {
        "a": batch_a,
        "b": batch_b,
        "counts": comparison.counts,
        "total": len(comparison.pairs),
        "differences": wanted["differences"],
        "match": wanted["match"],
        "match_choices": match_choices(batch_a, batch_b),
        "formats": compare_export.FORMATS,
        "costs": compare_costs(batch_a, batch_b),
        **_page(comparison, wanted, batch_a.columns),
    }
    return render(request, "batches/batch_compare.html", context)


@staff_member_required
@require_GET
def batch_compare_chosen(request: HttpRequest) -> HttpResponse:
    """The comparison of the two batches chosen on the batch list or a batch page."""
    chosen = [value for value in request.GET.getlist("batch") if value.isdigit()]
    if len(chosen) != 2 or chosen[0] == chosen[1]:
        messages.warning(request, gettext("Choose two batches to compare."))
        return redirect("batches:batch_list")
    match = {"match": request.GET["match"]} if request.GET.get("match") else {}
    target = reverse("batches:batch_compare", args=[int(chosen[0]), int(chosen[1])])
    return redirect(target + ("?" + urlencode(match) if match else ""))


@staff_member_required
@require_GET
def batch_compare_export(request: HttpRequest, a: int, b: int, fmt: str) -> HttpResponseBase:
    if fmt not in compare_export.FORMATS:
        raise Http404(gettext("Unknown export format."))
    batch_a, batch_b = batch_pair_or_404(a, b)
    wanted = _wanted(request, batch_a, batch_b)
    options = {"differences": wanted["differences"], "match": wanted["match"]}
    chunks = partial(compare_export.export_chunks, batch_a, batch_b, fmt, **options)
    return streamed(request, chunks, compare_export.content_type(fmt), compare_export.file_name(batch_a, batch_b, fmt))
