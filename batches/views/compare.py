"""Two batches side by side: rows paired by inputs, outputs compared, and the comparison exported."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from batches import compare_export
from batches.models import Execution, ExecutionStatus
from batches.presenters import Cell, cell
from batches.selectors_compare import Comparison, Pair, batch_pair_or_404, compare, differing_keys, page_rows
from batches.selectors_results import (
    OTHER_OUTPUTS,
    input_columns,
    other_outputs,
    output_columns,
    output_value,
    page_number,
)
from batches.views.downloads import streamed

COMPARE_PAGE_SIZE = 50


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


def _pair_rows(pairs: list[Pair], columns: list[str]) -> tuple[list[PairRow], list[str], list[str]]:
    rows = page_rows(pairs)
    present = list(rows.values())
    in_cols, (out_cols, more) = input_columns(columns, present), output_columns(present)
    result = []
    for pair in pairs:
        a, b = rows.get(pair.a or 0), rows.get(pair.b or 0)
        either = a or b
        inputs = either.inputs if either else {}
        changed = differing_keys(a.outputs if a else None, b.outputs if b else None) if a and b else set()
        result.append(
            PairRow(
                pair,
                [cell(inputs.get(key) if isinstance(inputs, dict) else None) for key in in_cols],
                _side(a, out_cols, changed, more),
                _side(b, out_cols, changed, more),
            )
        )
    return result, in_cols, [*out_cols, str(OTHER_OUTPUTS)] if more else out_cols


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


def _page(comparison: Comparison, differences: bool, wanted: str | None, columns: list[str]) -> dict[str, Any]:
    """One page of pairs, with the links that keep the "only differences" choice."""
    shown = comparison.only(differences)
    pages = max(1, -(-len(shown) // COMPARE_PAGE_SIZE))
    number = min(page_number(wanted), pages)
    start = (number - 1) * COMPARE_PAGE_SIZE
    rows, in_cols, out_cols = _pair_rows([Pair(*raw) for raw in shown[start : start + COMPARE_PAGE_SIZE]], columns)
    keep: dict[str, str | int] = {"only": "differences"} if differences else {}
    return {
        "rows": rows,
        "input_columns": in_cols,
        "output_columns": out_cols,
        "number": number,
        "pages": pages,
        "shown": len(shown),
        "previous_link": "?" + urlencode({**keep, "page": number - 1}) if number > 1 else "",
        "next_link": "?" + urlencode({**keep, "page": number + 1}) if number < pages else "",
        "export_query": "?" + urlencode(keep) if keep else "",
    }


@staff_member_required
@require_GET
def batch_compare(request: HttpRequest, a: int, b: int) -> HttpResponse:
    batch_a, batch_b = batch_pair_or_404(a, b)
    differences = request.GET.get("only") == "differences"
    comparison = compare(batch_a, batch_b)
    context = {
        "a": batch_a,
        "b": batch_b,
        "counts": comparison.counts,
        "total": len(comparison.pairs),
        "differences": differences,
        "formats": compare_export.FORMATS,
        **_page(comparison, differences, request.GET.get("page"), batch_a.columns),
    }
    return render(request, "batches/batch_compare.html", context)


@staff_member_required
@require_GET
def batch_compare_export(request: HttpRequest, a: int, b: int, fmt: str) -> HttpResponseBase:
    if fmt not in compare_export.FORMATS:
        raise Http404(gettext("Unknown export format."))
    batch_a, batch_b = batch_pair_or_404(a, b)
    differences = request.GET.get("only") == "differences"
    chunks = partial(compare_export.export_chunks, batch_a, batch_b, fmt, differences=differences)
    return streamed(request, chunks, compare_export.content_type(fmt), compare_export.file_name(batch_a, batch_b, fmt))
