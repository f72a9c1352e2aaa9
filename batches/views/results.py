"""The results page of a batch: every row's inputs and outputs, filtered, searched and paged (JSON in `api`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from batches.choices import ErrorType, ExecutionStatus
from batches.models import BatchTask, Execution
from batches.roles import ADD_BATCH
from batches.selectors import batches as selectors
from batches.selectors.results import (
    OTHER_OUTPUTS,
    ResultFilter,
    ResultPage,
    other_outputs,
    output_value,
    page_number,
    result_page,
)
from batches.views.presenters import Cell, cell

RESULTS_PAGE_SIZE = 50


@dataclass
class ResultRow:
    execution: Execution
    inputs: list[Cell]
    outputs: list[Cell]
    url: str  # the row's page; resolved here once, not by {% url %} in each cell (a third of the render time)
    number: int
    status_label: str


def results_page(request: HttpRequest, batch: BatchTask, wanted: ResultFilter) -> ResultPage:
    number = page_number(request.GET.get("page"))
    return result_page(batch, wanted, number=number, size=RESULTS_PAGE_SIZE)


def _rows(page: ResultPage) -> list[ResultRow]:
    prefix = reverse("batches:execution_detail", args=[0]).rsplit("0/", 1)[0]  # one reverse() for the page
    labels = dict(ExecutionStatus.choices)
    return [
        ResultRow(
            row,
            [cell(row.inputs.get(key) if isinstance(row.inputs, dict) else None) for key in page.input_columns],
            _outputs(row, page),
            f"{prefix}{row.pk}/",
            row.index + 1,
            str(labels.get(row.status, row.status)),
        )
        for row in page.rows
    ]


def _outputs(row: Execution, page: ResultPage) -> list[Cell]:
    cells = [cell(output_value(row, key)) for key in page.output_columns]
    return [*cells, cell(other_outputs(row, page.output_columns))] if page.more_outputs else cells


def output_headers(page: ResultPage) -> list[str]:
    return [*page.output_columns, str(OTHER_OUTPUTS)] if page.more_outputs else page.output_columns


def _page_link(wanted: ResultFilter, number: int) -> str:
    query: dict[str, str | int] = {**wanted.as_query(), "page": number}
    return "?" + urlencode(query)


@staff_member_required
@require_GET
def batch_results(request: HttpRequest, pk: int) -> HttpResponse:
    batch = selectors.batch_or_404(pk, "workflow")
    wanted = ResultFilter.from_query(request.GET)
    page = results_page(request, batch, wanted)
    context = {
        "batch": batch,
        "wanted": wanted,
        "page": page,
        "rows": _rows(page),
        "output_headers": output_headers(page),
        "statuses": ExecutionStatus.choices,
        "error_types": selectors.error_counts(batch.pk),
        "error_labels": dict(ErrorType.choices),
        "previous_link": _page_link(wanted, page.number - 1),
        "next_link": _page_link(wanted, page.number + 1),
        "json_link": reverse("batches:batch_results_json", args=[batch.pk]) + _page_link(wanted, page.number),
        "can_rerun": request.user.has_perm(ADD_BATCH),
        "select_label": gettext("Select row"),
        "more": gettext("more"),
    }
    return render(request, "batches/batch_results.html", context)
