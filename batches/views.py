"""Staff pages: the batch list, one batch's progress, its exports and the buttons that control it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.functional import Promise
from django.utils.http import content_disposition_header
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from batches import exporters, selectors
from batches.forms import BatchFilterForm
from batches.models import BatchStatus, BatchTask
from batches.services import lifecycle

PAGE_SIZE = 50
RECENT_FAILURES = 20
Outcome = tuple[int, str]  # a messages level and the text to show


def progress_bar(counts: dict[str, int]) -> dict[str, int]:
    """What the progress bar template needs, from the counts per execution state."""
    total = sum(counts.values())
    done = total - counts["pending"] - counts["running"]
    return {**counts, "total": total, "done": done, "percent": 100 * done // total if total else 100}


def _start(batch: BatchTask) -> Outcome:
    if lifecycle.start_batch(batch.pk):
        return messages.SUCCESS, gettext("Batch started.")
    return messages.WARNING, gettext("Only a pending batch can be started.")


def _pause(batch: BatchTask) -> Outcome:
    if lifecycle.pause_batch(batch.pk):
        return messages.SUCCESS, gettext("Batch paused.")
    return messages.WARNING, gettext("Only a running batch can be paused.")


def _resume(batch: BatchTask) -> Outcome:
    if lifecycle.resume_batch(batch.pk):
        return messages.SUCCESS, gettext("Batch resumed.")
    return messages.WARNING, gettext("Only a paused batch can be resumed.")


def _cancel(batch: BatchTask) -> Outcome:
    cancelled = lifecycle.cancel_batch(batch.pk)
    if cancelled is None:
        return messages.WARNING, gettext("A finished or cancelled batch cannot be cancelled.")
    text = ngettext(
        "Batch cancelled; %(count)d execution cancelled.", "Batch cancelled; %(count)d executions cancelled.", cancelled
    )
    return messages.SUCCESS, text % {"count": cancelled}


def _retry_failed(batch: BatchTask) -> Outcome:
    retried = lifecycle.retry_failed(batch.pk).retried
    if not retried:
        return messages.WARNING, gettext("No failed executions to retry.")
    text = ngettext("Retrying %(count)d failed execution.", "Retrying %(count)d failed executions.", retried)
    return messages.SUCCESS, text % {"count": retried}


@dataclass(frozen=True)
class Control:
    label: str | Promise
    permission: str
    states: tuple[str, ...]  # batch states in which the button is offered
    run: Callable[[BatchTask], Outcome]


_ACTIVE = (BatchStatus.PENDING, BatchStatus.RUNNING, BatchStatus.PAUSED)
CONTROLS = {
    "start": Control(_("Start"), "batches.control_batchtask", (BatchStatus.PENDING,), _start),
    "pause": Control(_("Pause"), "batches.control_batchtask", (BatchStatus.RUNNING,), _pause),
    "resume": Control(_("Resume"), "batches.control_batchtask", (BatchStatus.PAUSED,), _resume),
    "cancel": Control(_("Cancel"), "batches.control_batchtask", _ACTIVE, _cancel),
    "retry-failed": Control(_("Retry failed executions"), "batches.retry_execution", tuple(BatchStatus), _retry_failed),
}


def offered_controls(request: HttpRequest, batch: BatchTask) -> list[tuple[str, Control]]:
    return [
        (name, control)
        for name, control in CONTROLS.items()
        if batch.status in control.states and request.user.has_perm(control.permission)
    ]


def _eta(seconds: float | None) -> timedelta | None:
    return timedelta(seconds=round(seconds)) if seconds is not None else None


@staff_member_required
@require_GET
def batch_list(request: HttpRequest) -> HttpResponse:
    form = BatchFilterForm(request.GET)
    batches = BatchTask.objects.select_related("workflow")
    if form.is_valid() and form.cleaned_data["status"]:
        batches = batches.filter(status=form.cleaned_data["status"])
    page = Paginator(batches, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = selectors.state_counts([batch.pk for batch in page])
    rows = [(batch, progress_bar(counts[batch.pk])) for batch in page]
    return render(request, "batches/batch_list.html", {"form": form, "page": page, "rows": rows})


@staff_member_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(BatchTask.objects.select_related("workflow"), pk=pk)
    progress = selectors.batch_progress(batch)
    context = {
        "batch": batch,
        "progress": progress,
        "eta": _eta(progress.eta_seconds),
        "failures": batch.executions.failed().order_by("-finished_at", "-index")[:RECENT_FAILURES],
        "formats": exporters.FORMATS,
        "controls": offered_controls(request, batch),
    }
    return render(request, "batches/batch_detail.html", context)


@staff_member_required
@require_GET
def batch_export(request: HttpRequest, pk: int, fmt: str) -> StreamingHttpResponse:
    if fmt not in exporters.FORMATS:
        raise Http404(gettext("Unknown export format."))
    batch = get_object_or_404(BatchTask, pk=pk)
    response = StreamingHttpResponse(exporters.export_chunks(batch, fmt), content_type=exporters.content_type(fmt))
    response["Content-Disposition"] = content_disposition_header(True, exporters.file_name(batch, fmt)) or "attachment"
    return response


@staff_member_required
@require_POST
def batch_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    control = CONTROLS.get(action)
    if control is None:
        raise Http404(gettext("Unknown action."))
    if not request.user.has_perm(control.permission):
        raise PermissionDenied
    batch = get_object_or_404(BatchTask, pk=pk)
    messages.add_message(request, *control.run(batch))
    return redirect("batches:batch_detail", pk=batch.pk)
