"""The results page of a batch (every row's inputs and outputs) and its JSON twin."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from batches import selectors
from batches.models import BatchTask, ErrorType, Execution, ExecutionStatus
from batches.selectors_results import ResultFilter, ResultPage, output_value, page_number, result_page
from batches.views import ADD_PERMISSION, staff_json

RESULTS_PAGE_SIZE = 50
CLIP = 160  # characters of a cell shown in the table; the row's page shows the whole value


@dataclass
class Cell:
    text: str
    clipped: bool
    differs: bool = False  # on the compare page: this output key differs between the two rows


@dataclass
class ResultRow:
    execution: Execution
    inputs: list[Cell]
    outputs: list[Cell]
    url: str  # the row's page; resolved here once, not by {% url %} in each cell (a third of the render time)
    number: int
    status_label: str


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def cell(value: Any) -> Cell:
    text = cell_text(value)
    return Cell(text[:CLIP] + "…", True) if len(text) > CLIP else Cell(text, False)


def _page(request: HttpRequest, batch: BatchTask, wanted: ResultFilter) -> ResultPage:
    number = page_number(request.GET.get("page"))
    return result_page(batch, wanted, number=number, size=RESULTS_PAGE_SIZE)


def _rows(page: ResultPage) -> list[ResultRow]:
    prefix = reverse("batches:execution_detail", args=[0]).rsplit("0/", 1)[0]  # one reverse() for the page
    labels = dict(ExecutionStatus.choices)
    return [
        ResultRow(
            row,
            [cell(row.inputs.get(key) if isinstance(row.inputs, dict) else None) for key in page.input_columns],
            [cell(output_value(row, key)) for key in page.output_columns],
            f"{prefix}{row.pk}/",
            row.index + 1,
            str(labels.get(row.status, row.status)),
        )
        for row in page.rows
    ]


def _page_link(wanted: ResultFilter, number: int) -> str:
    query: dict[str, str | int] = {**wanted.as_query(), "page": number}
    return "?" + urlencode(query)


@staff_member_required
@require_GET
def batch_results(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(BatchTask.objects.select_related("workflow"), pk=pk)
    wanted = ResultFilter.from_query(request.GET)
    page = _page(request, batch, wanted)
    context = {
        "batch": batch,
        "wanted": wanted,
        "page": page,
        "rows": _rows(page),
        "statuses": ExecutionStatus.choices,
        "error_types": selectors.error_counts(batch.pk),
        "error_labels": dict(ErrorType.choices),
        "previous_link": _page_link(wanted, page.number - 1),
        "next_link": _page_link(wanted, page.number + 1),
        "json_link": reverse("batches:batch_results_json", args=[batch.pk]) + _page_link(wanted, page.number),
        "can_rerun": request.user.has_perm(ADD_PERMISSION),
        "select_label": gettext("Select row"),
        "more": gettext("more"),
    }
    return render(request, "batches/batch_results.html", context)


def _row_data(row: Execution) -> dict[str, Any]:
    return {
        "id": row.pk,
        "index": row.index,
        "row": row.index + 1,
        "status": row.status,
        "inputs": row.inputs,
        "outputs": row.outputs,
        "error_type": row.error_type,
        "error": row.error,
        "attempts": row.attempt_count,
        "total_tokens": row.total_tokens,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "url": reverse("batches:execution_detail", args=[row.pk]),
    }


@staff_json
@require_GET
def batch_results_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = get_object_or_404(BatchTask, pk=pk)
    wanted = ResultFilter.from_query(request.GET)
    page = _page(request, batch, wanted)
    data = {
        "batch": batch.pk,
        **{"q": wanted.q, "status": wanted.status, "error_type": wanted.error_type},
        **{"page": page.number, "pages": page.pages, "count": page.count, "has_next": page.has_next},
        **{"input_columns": page.input_columns, "output_columns": page.output_columns},
        "results": [_row_data(row) for row in page.rows],
    }
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})
