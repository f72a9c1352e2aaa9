"""The pages' JSON twins (progress, failures, results, retry), for scripts and the pages' own polling.

They answer JSON errors (403 for anonymous or non-staff users, 404, 400) instead of the login page.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from batches.forms.executions import RetryForm
from batches.models import Execution
from batches.roles import RETRY_EXECUTION
from batches.selectors import batches as selectors
from batches.selectors.batches import iso
from batches.selectors.results import ResultFilter
from batches.services import audit
from batches.views import presenters
from batches.views.access import first_error, staff_json
from batches.views.failures import error_type_param, failures_page, retry_chosen
from batches.views.results import results_page


@staff_json
@require_GET
def batch_progress_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = selectors.batch_or_404(pk, "workflow__throttle")
    progress = selectors.batch_progress(batch)
    return JsonResponse(presenters.progress_data(batch, progress, selectors.error_counts(batch.pk)))


def _failure_data(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.pk,
        "index": execution.index,
        "row": execution.index + 1,
        "error_type": execution.error_type,
        "error": execution.error,
        "attempts": execution.attempt_count,
        "http_status": execution.http_status,
        "finished_at": iso(execution.finished_at),
        "url": reverse("batches:execution_detail", args=[execution.pk]),
    }


@staff_json
@require_GET
def batch_failures_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = selectors.batch_or_404(pk)
    error_type = error_type_param(request)
    page = failures_page(request, batch, error_type)
    data = {"batch": batch.pk, "error_type": error_type, "count": page.paginator.count, "page": page.number}
    data |= {"pages": page.paginator.num_pages, "results": [_failure_data(execution) for execution in page]}
    return JsonResponse(data)


@staff_json
@require_POST
def batch_retry_json(request: HttpRequest, pk: int) -> JsonResponse:
    if not request.user.has_perm(RETRY_EXECUTION):
        return JsonResponse({"error": gettext("You may not retry executions.")}, status=403)
    batch = selectors.batch_or_404(pk)
    form = RetryForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": first_error(form), "errors": form.errors.get_json_data()}, status=400)
    report, (_, text) = retry_chosen(batch, form, audit.of_request(request))
    return JsonResponse({"retried": report.retried, "skipped": report.skipped, "message": text})


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
        "latency": row.latency,  # ours, of the successful try (issue 31)
        "elapsed": row.elapsed,  # Dify's own
        "price": None if row.price is None else format(row.price.normalize(), "f"),  # Dify's, where it reports one
        "currency": row.currency,
        "finished_at": iso(row.finished_at),
        "url": reverse("batches:execution_detail", args=[row.pk]),
    }


@staff_json
@require_GET
def batch_results_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = selectors.batch_or_404(pk)
    wanted = ResultFilter.from_query(request.GET)
    page = results_page(request, batch, wanted)
    data = {
        "batch": batch.pk,
        **{"q": wanted.q, "status": wanted.status, "error_type": wanted.error_type},
        **{"page": page.number, "pages": page.pages, "count": page.count, "has_next": page.has_next},
        **{"input_columns": page.input_columns, "output_columns": page.output_columns},
        "more_output_columns": page.more_outputs,
        "results": [_row_data(row) for row in page.rows],
    }
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})
