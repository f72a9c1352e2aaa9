"""A batch's failed rows, by error type, and the retry form that sends chosen ones back to pending."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from batches.choices import ErrorType
from batches.forms.executions import RetryForm
from batches.models import BatchTask
from batches.roles import RETRY_EXECUTION
from batches.selectors import batches as selectors
from batches.services import audit, lifecycle
from batches.views import presenters
from batches.views.access import first_error, next_url, require
from batches.views.controls import Outcome, retried

FAILURES_PAGE_SIZE = 50


def failures_page(request: HttpRequest, batch: BatchTask, error_type: str) -> Page:
    return Paginator(selectors.failures(batch.pk, error_type), FAILURES_PAGE_SIZE).get_page(request.GET.get("page"))


def error_type_param(request: HttpRequest) -> str:
    """The `error_type` query parameter if it names an error type (or is empty), else ""."""
    value = request.GET.get("error_type", "")
    return value if value in ErrorType.values else ""


@staff_member_required
@require_GET
def batch_failures(request: HttpRequest, pk: int) -> HttpResponse:
    batch = selectors.batch_or_404(pk, "workflow")
    error_type = error_type_param(request)
    context = {
        "batch": batch,
        "error_type": error_type,
        "error_label": presenters.error_label(error_type),
        "errors": presenters.error_bars(selectors.error_counts(batch.pk)),
        "page": failures_page(request, batch, error_type),
        "can_retry": request.user.has_perm(RETRY_EXECUTION),
    }
    return render(request, "batches/batch_failures.html", context)


def retry_chosen(batch: BatchTask, form: RetryForm, actor: audit.Actor) -> tuple[lifecycle.RetryReport, Outcome]:
    """Retry the rows a valid retry form chose; chosen rows report those no longer failed."""
    report = lifecycle.retry_failed(batch.pk, **form.retry_arguments(), actor=actor)
    scope = form.cleaned_data["scope"]
    return report, retried(report, show_skipped=scope in ("one", "selected"), cancelled=scope == "cancelled")


@staff_member_required
@require_POST
def batch_retry(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, RETRY_EXECUTION)
    batch = selectors.batch_or_404(pk)
    form = RetryForm(request.POST)
    outcome = (
        retry_chosen(batch, form, audit.of_request(request))[1]
        if form.is_valid()
        else (messages.ERROR, first_error(form))
    )
    messages.add_message(request, *outcome)
    return redirect(next_url(request, reverse("batches:batch_failures", args=[batch.pk])))
