"""The batch list and a batch's page, its export and its buttons (start, pause, …, concurrency)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from batches.choices import ACTIVE, ENDED, BatchStatus
from batches.exports import batches as exporters
from batches.forms.batches import BatchFilterForm, ConcurrencyForm
from batches.models import AuditEntry, BatchTask
from batches.roles import CONTROL_BATCH
from batches.selectors import batches as selectors
from batches.selectors.compare import compare_candidates
from batches.services import audit, costs, workflows
from batches.services.controls import CONTROLS, Control
from batches.views import controls, presenters
from batches.views.access import next_url, require
from batches.views.downloads import streamed

PAGE_SIZE = 50
RECENT_FAILURES = 20
HISTORY_SHOWN = 100


@dataclass
class BatchRow:
    batch: BatchTask
    bar: dict[str, int]
    rate: int | None
    controls: list[tuple[str, Control]]
    waiting: str = ""  # why the batch is not moving: its upstream is down


@staff_member_required
@require_GET
def batch_list(request: HttpRequest) -> HttpResponse:
    form = BatchFilterForm(request.GET)
    status = form.cleaned_data["status"] if form.is_valid() else ""
    page = Paginator(selectors.batches(status), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "rows": _batch_rows(request, list(page))}
    return render(request, "batches/batch_list.html", context)


def _batch_rows(request: HttpRequest, batches: list[BatchTask]) -> list[BatchRow]:
    counts = selectors.state_counts([batch.pk for batch in batches])
    rates = selectors.recent_rates(batches)
    upstreams = selectors.upstreams(batch.workflow_id for batch in batches if batch.status == BatchStatus.RUNNING)
    rows = []
    for batch in batches:
        offered = [(n, c) for n, c in controls.offered(request, batch, counts[batch.pk]["failed"]) if c.on_list]
        upstream = upstreams.get(batch.workflow_id)
        waiting = presenters.waiting_message(upstream) if upstream else ""
        rows.append(BatchRow(batch, presenters.progress_bar(counts[batch.pk]), rates.get(batch.pk), offered, waiting))
    return rows


@staff_member_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = selectors.batch_or_404(pk, "workflow__throttle")
    progress = selectors.batch_progress(batch)
    errors = selectors.error_counts(batch.pk)
    can_control = request.user.has_perm(CONTROL_BATCH) and batch.status in ACTIVE
    context = {
        "batch": batch,
        "progress": progress,
        "eta": presenters.eta(progress.eta_seconds),
        "errors": presenters.error_bars(errors),
        "failures": selectors.recent_failures(batch.pk, RECENT_FAILURES),
        "formats": exporters.FORMATS,
        "controls": controls.offered(request, batch, progress.failed),
        "concurrency_form": ConcurrencyForm(initial={"concurrency": batch.concurrency}) if can_control else None,
        "live": batch.status not in ENDED,
        "can_probe": can_control,
        "moved": workflows.moved(batch),
        "progress_data": presenters.progress_data(batch, progress, errors),
        "compare_candidates": compare_candidates(batch),
        "history": AuditEntry.objects.for_batch(batch.pk)[:HISTORY_SHOWN],
        "costs": costs.costs_of(batch),
    }
    return render(request, "batches/batch_detail.html", context)


@staff_member_required
@require_GET
def batch_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponseBase:
    if fmt not in exporters.FORMATS:
        raise Http404(gettext("Unknown export format."))
    batch = selectors.batch_or_404(pk)
    chunks = partial(exporters.export_chunks, batch, fmt)
    return streamed(request, chunks, exporters.content_type(fmt), exporters.file_name(batch, fmt))


@staff_member_required
@require_POST
def batch_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    control = CONTROLS.get(action)
    if control is None:
        raise Http404(gettext("Unknown action."))
    require(request, control.permission)
    batch = selectors.batch_or_404(pk)
    messages.add_message(request, *controls.press(control, batch, audit.of_request(request)))
    return redirect(next_url(request, reverse("batches:batch_detail", args=[batch.pk])))


@staff_member_required
@require_POST
def batch_concurrency(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CONTROL_BATCH)
    batch = selectors.batch_or_404(pk)
    messages.add_message(
        request, *controls.set_concurrency(batch, ConcurrencyForm(request.POST), audit.of_request(request))
    )
    return redirect("batches:batch_detail", pk=batch.pk)
