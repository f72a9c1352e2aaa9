"""Staff pages: batches (list, new, detail, failures), executions, their JSON endpoints and the control buttons.

Every view is a thin shell: reads come from `batches.selectors`, changes from `batches.services.lifecycle`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from batches import clipping, dify, exporters, importers, selectors
from batches.forms import BatchFilterForm, ConcurrencyForm, ImportOptionsForm, InputsForm, RetryForm, UploadForm
from batches.models import BatchStatus, BatchTask, ErrorType, Execution, ExecutionStatus, Mode, Workflow
from batches.presenters import waiting_message
from batches.services import lifecycle, workflows

PAGE_SIZE = 50
FAILURES_PAGE_SIZE = 50
RECENT_FAILURES = 20
PREVIEW_ROWS = 20
UPLOAD_SESSION_KEY = "batches_upload"
UPLOAD_MAX_AGE = 24 * 3600  # seconds an abandoned upload is kept
CONTROL_PERMISSION = "batches.control_batchtask"
RETRY_PERMISSION = "batches.retry_execution"
ADD_PERMISSION = "batches.add_batchtask"
FINAL_STATES = (BatchStatus.FINISHED, BatchStatus.CANCELLED)
ACTIVE_STATES = (BatchStatus.PENDING, BatchStatus.RUNNING, BatchStatus.PAUSED)
RETRYABLE_STATES = (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
Outcome = tuple[int, str]  # a messages level and the text to show
View = Callable[..., HttpResponse]


# --------------------------------------------------------------------------- helpers


def progress_bar(counts: dict[str, int]) -> dict[str, int]:
    """What the progress bar template needs, from the counts per execution state."""
    total = sum(counts.values())
    done = total - counts["pending"] - counts["running"]
    return {**counts, "total": total, "done": done, "percent": 100 * done // total if total else 100}


def staff_json(view: View) -> View:
    """Like staff_member_required, but answers a JSON 403 instead of redirecting to the login page (and a JSON 404
    instead of the HTML page when the object is missing)."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            return JsonResponse({"error": gettext("Staff login required.")}, status=403)
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return JsonResponse({"error": gettext("Not found.")}, status=404)

    return checked


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _eta(seconds: float | None) -> timedelta | None:
    return timedelta(seconds=round(seconds)) if seconds is not None else None


def _error_label(error_type: str) -> str:
    return str(ErrorType(error_type).label) if error_type in ErrorType.values else error_type


def _error_bars(counts: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Failed rows per error type, with each bar's width relative to the largest."""
    largest = max((n for _, n in counts), default=0)
    return [
        {"error_type": kind, "label": _error_label(kind), "count": n, "percent": 100 * n // largest}
        for kind, n in counts
    ]


def _error_type_param(request: HttpRequest) -> str:
    """The `error_type` query parameter if it names an error type (or is empty), else ""."""
    value = request.GET.get("error_type", "")
    return value if value in ErrorType.values else ""


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return target if safe else default


def _first_error(form: Any) -> str:
    return next(iter(form.errors.values()))[0]


# --------------------------------------------------------------------------- batch controls


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
    return _retried(lifecycle.retry_failed(batch.pk), show_skipped=False)


def _retried(report: lifecycle.RetryReport, show_skipped: bool) -> Outcome:
    if not report.retried:
        return messages.WARNING, gettext("No failed executions to retry.")
    text = ngettext("Retrying %(count)d failed execution.", "Retrying %(count)d failed executions.", report.retried)
    text = text % {"count": report.retried}
    if not (show_skipped and report.skipped):
        return messages.SUCCESS, text
    skipped = ngettext(
        "%(count)d was skipped: it is no longer failed.",
        "%(count)d were skipped: they are no longer failed.",
        report.skipped,
    )
    return messages.WARNING, text + " " + skipped % {"count": report.skipped}


def _set_concurrency(batch: BatchTask, form: ConcurrencyForm) -> Outcome:
    if not form.is_valid():
        return messages.ERROR, _first_error(form)
    concurrency = form.cleaned_data["concurrency"]
    if lifecycle.set_concurrency(batch.pk, concurrency):
        return messages.SUCCESS, gettext("Concurrency set to %(count)d.") % {"count": concurrency}
    return messages.WARNING, gettext("The concurrency of a finished or cancelled batch cannot be changed.")


@dataclass(frozen=True)
class Control:
    label: str | Promise
    permission: str
    states: tuple[str, ...]  # batch states in which the button is offered
    run: Callable[[BatchTask], Outcome]
    on_list: bool = True  # also offered as a row action on the batch list


CONTROLS = {
    "start": Control(_("Start"), CONTROL_PERMISSION, (BatchStatus.PENDING,), _start),
    "pause": Control(_("Pause"), CONTROL_PERMISSION, (BatchStatus.RUNNING,), _pause),
    "resume": Control(_("Resume"), CONTROL_PERMISSION, (BatchStatus.PAUSED,), _resume),
    "cancel": Control(_("Cancel"), CONTROL_PERMISSION, ACTIVE_STATES, _cancel, on_list=False),
    "retry-failed": Control(_("Retry failed"), RETRY_PERMISSION, tuple(BatchStatus), _retry_failed),
}


def offered_controls(request: HttpRequest, batch: BatchTask, failed: int) -> list[tuple[str, Control]]:
    """The buttons this user may press for this batch now ("Retry failed" only when something failed)."""
    return [
        (name, control)
        for name, control in CONTROLS.items()
        if batch.status in control.states
        and request.user.has_perm(control.permission)
        and (name != "retry-failed" or failed)
    ]


# --------------------------------------------------------------------------- batch list and detail


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
    batches = BatchTask.objects.select_related("workflow")
    if form.is_valid() and form.cleaned_data["status"]:
        batches = batches.filter(status=form.cleaned_data["status"])
    page = Paginator(batches, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "rows": _batch_rows(request, list(page))}
    return render(request, "batches/batch_list.html", context)


def _batch_rows(request: HttpRequest, batches: list[BatchTask]) -> list[BatchRow]:
    counts = selectors.state_counts([batch.pk for batch in batches])
    rates = selectors.recent_rates(batches)
    upstreams = selectors.upstreams(batch.workflow_id for batch in batches if batch.status == BatchStatus.RUNNING)
    rows = []
    for batch in batches:
        controls = [(n, c) for n, c in offered_controls(request, batch, counts[batch.pk]["failed"]) if c.on_list]
        waiting = waiting_message(upstreams[batch.workflow_id]) if batch.workflow_id in upstreams else ""
        rows.append(BatchRow(batch, progress_bar(counts[batch.pk]), rates.get(batch.pk), controls, waiting))
    return rows


@staff_member_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(BatchTask.objects.select_related("workflow__throttle"), pk=pk)
    progress = selectors.batch_progress(batch)
    errors = selectors.error_counts(batch.pk)
    can_control = request.user.has_perm(CONTROL_PERMISSION) and batch.status in ACTIVE_STATES
    context = {
        "batch": batch,
        "progress": progress,
        "eta": _eta(progress.eta_seconds),
        "errors": _error_bars(errors),
        "failures": selectors.recent_failures(batch.pk, RECENT_FAILURES),
        "formats": exporters.FORMATS,
        "controls": offered_controls(request, batch, progress.failed),
        "concurrency_form": ConcurrencyForm(initial={"concurrency": batch.concurrency}) if can_control else None,
        "live": batch.status not in FINAL_STATES,
        "can_probe": can_control,
        "progress_data": _progress_data(batch, progress, errors),
    }
    return render(request, "batches/batch_detail.html", context)


def _progress_data(batch: BatchTask, progress: selectors.Progress, errors: list[tuple[str, int]]) -> dict[str, Any]:
    """The batch's live figures, as the progress endpoint and the detail page's script see them."""
    eta = _eta(progress.eta_seconds)
    upstream = selectors.upstream_of(getattr(batch.workflow, "throttle", None))  # read with the batch
    return {
        "upstream": selectors.upstream_summary(upstream),
        "waiting_for_dify": waiting_message(upstream) if batch.status == BatchStatus.RUNNING else "",
        "id": batch.pk,
        "status": batch.status,
        "status_display": str(batch.get_status_display()),
        "status_reason": batch.status_reason,
        "finished": batch.status in FINAL_STATES,
        "concurrency": batch.concurrency,
        "total": progress.total,
        "pending": progress.pending,
        "running": progress.running,
        "succeeded": progress.succeeded,
        "failed": progress.failed,
        "cancelled": progress.cancelled,
        "done": progress.done,
        "percent": progress.percent,
        "total_tokens": progress.total_tokens,
        "rate_per_minute": progress.rate_per_minute,
        "eta_seconds": progress.eta_seconds,
        "eta": str(eta) if eta is not None else None,
        "segments": _segments(progress),
        "errors": _error_bars(errors),
        "started_at": _iso(batch.started_at),
        "finished_at": _iso(batch.finished_at),
    }


def _segments(progress: selectors.Progress) -> dict[str, float]:
    """Widths (percent) of the stacked progress bar's parts."""
    parts = {"succeeded": progress.succeeded, "failed": progress.failed, "cancelled": progress.cancelled}
    parts["running"] = progress.running
    return {name: round(100 * count / progress.total, 2) if progress.total else 0 for name, count in parts.items()}


@staff_json
@require_GET
def batch_progress_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = get_object_or_404(BatchTask.objects.select_related("workflow__throttle"), pk=pk)
    progress = selectors.batch_progress(batch)
    return JsonResponse(_progress_data(batch, progress, selectors.error_counts(batch.pk)))


@staff_member_required
@require_GET
def batch_export(request: HttpRequest, pk: int, fmt: str) -> StreamingHttpResponse:
    if fmt not in exporters.FORMATS:
        raise Http404(gettext("Unknown export format."))
    batch = get_object_or_404(BatchTask, pk=pk)
    response = StreamingHttpResponse(exporters.export_chunks(batch, fmt), content_type=exporters.content_type(fmt))
    response["Content-Disposition"] = exporters.attachment(exporters.file_name(batch, fmt))
    return response


@staff_member_required
@require_POST
def batch_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    control = CONTROLS.get(action)
    if control is None:
        raise Http404(gettext("Unknown action."))
    _require(request, control.permission)
    batch = get_object_or_404(BatchTask, pk=pk)
    messages.add_message(request, *control.run(batch))
    return redirect(_next_url(request, reverse("batches:batch_detail", args=[batch.pk])))


@staff_member_required
@require_POST
def batch_concurrency(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, CONTROL_PERMISSION)
    batch = get_object_or_404(BatchTask, pk=pk)
    messages.add_message(request, *_set_concurrency(batch, ConcurrencyForm(request.POST)))
    return redirect("batches:batch_detail", pk=batch.pk)


# --------------------------------------------------------------------------- failures and retries


def _failures_page(request: HttpRequest, batch: BatchTask, error_type: str) -> Page:
    return Paginator(selectors.failures(batch.pk, error_type), FAILURES_PAGE_SIZE).get_page(request.GET.get("page"))


@staff_member_required
@require_GET
def batch_failures(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(BatchTask.objects.select_related("workflow"), pk=pk)
    error_type = _error_type_param(request)
    context = {
        "batch": batch,
        "error_type": error_type,
        "error_label": _error_label(error_type),
        "errors": _error_bars(selectors.error_counts(batch.pk)),
        "page": _failures_page(request, batch, error_type),
        "can_retry": request.user.has_perm(RETRY_PERMISSION),
    }
    return render(request, "batches/batch_failures.html", context)


def _failure_data(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.pk,
        "index": execution.index,
        "error_type": execution.error_type,
        "error": execution.error,
        "attempts": execution.attempt_count,
        "http_status": execution.http_status,
        "finished_at": _iso(execution.finished_at),
        "url": reverse("batches:execution_detail", args=[execution.pk]),
    }


@staff_json
@require_GET
def batch_failures_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = get_object_or_404(BatchTask, pk=pk)
    error_type = _error_type_param(request)
    page = _failures_page(request, batch, error_type)
    return JsonResponse(
        {
            "batch": batch.pk,
            "error_type": error_type,
            "count": page.paginator.count,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "results": [_failure_data(execution) for execution in page],
        }
    )


def _retry_outcome(batch: BatchTask, form: RetryForm) -> Outcome:
    if not form.is_valid():
        return messages.ERROR, _first_error(form)
    report = lifecycle.retry_failed(batch.pk, **form.retry_arguments())
    return _retried(report, show_skipped=form.cleaned_data["scope"] in ("one", "selected"))


@staff_member_required
@require_POST
def batch_retry(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, RETRY_PERMISSION)
    batch = get_object_or_404(BatchTask, pk=pk)
    messages.add_message(request, *_retry_outcome(batch, RetryForm(request.POST)))
    return redirect(_next_url(request, reverse("batches:batch_failures", args=[batch.pk])))


@staff_json
@require_POST
def batch_retry_json(request: HttpRequest, pk: int) -> JsonResponse:
    if not request.user.has_perm(RETRY_PERMISSION):
        return JsonResponse({"error": gettext("You may not retry executions.")}, status=403)
    batch = get_object_or_404(BatchTask, pk=pk)
    form = RetryForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": _first_error(form), "errors": form.errors.get_json_data()}, status=400)
    report = lifecycle.retry_failed(batch.pk, **form.retry_arguments())
    _, text = _retried(report, show_skipped=form.cleaned_data["scope"] in ("one", "selected"))
    return JsonResponse({"retried": report.retried, "skipped": report.skipped, "message": text})


# --------------------------------------------------------------------------- executions


def _execution_context(request: HttpRequest, execution: Execution, form: InputsForm | None) -> dict[str, Any]:
    editable = execution.status in RETRYABLE_STATES and request.user.has_perm(RETRY_PERMISSION)
    inputs_json, inputs_cut = clipping.clipped_json(execution.inputs)
    outputs_json, outputs_cut = (None, False) if execution.outputs is None else clipping.clipped_json(execution.outputs)
    return {
        "execution": execution,
        "batch": execution.batch,
        "inputs_json": inputs_json,
        "outputs_json": outputs_json,
        "clipped": inputs_cut or outputs_cut,  # the page says where the full values are (the JSONL export)
        "attempts": selectors.attempts(execution),
        "form": (form or InputsForm.for_execution(execution))
        if editable and not clipping.too_large_to_edit(execution.inputs)
        else None,
    }


@staff_member_required
@require_GET
def execution_detail(request: HttpRequest, pk: int) -> HttpResponse:
    execution = get_object_or_404(Execution.objects.select_related("batch"), pk=pk)
    return render(request, "batches/execution_detail.html", _execution_context(request, execution, None))


@staff_member_required
@require_POST
def execution_retry(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, RETRY_PERMISSION)
    execution = get_object_or_404(Execution.objects.select_related("batch"), pk=pk)
    form = InputsForm(request.POST)
    if not form.is_valid_for(execution):
        context = _execution_context(request, execution, form)
        return render(request, "batches/execution_detail.html", context, status=400)
    rows = Execution.objects.filter(pk=execution.pk)
    report = lifecycle.retry_executions(rows, include_cancelled=True, inputs=form.cleaned_data["inputs"])
    if report.retried:
        messages.success(request, gettext("Execution queued for retry with the inputs shown."))
    else:
        messages.warning(request, gettext("Only a failed or cancelled execution can be retried; nothing changed."))
    return redirect("batches:execution_detail", pk=execution.pk)


# --------------------------------------------------------------------------- new batch: upload, preview, import


@dataclass(frozen=True)
class Upload:
    """A file uploaded for a new batch, kept in a temporary folder between preview and import."""

    token: str
    filename: str
    workflow_id: int

    @property
    def path(self) -> Path:
        return uploads_dir() / self.token


def uploads_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "batches-uploads"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _session_upload(request: HttpRequest) -> Upload | None:
    data = request.session.get(UPLOAD_SESSION_KEY)
    if not isinstance(data, dict) or not re.fullmatch(r"[0-9a-f]{32}", str(data.get("token", ""))):
        return None
    upload = Upload(data["token"], str(data.get("filename", "")), int(data.get("workflow", 0)))
    return upload if upload.path.is_file() else None


def _store_upload(request: HttpRequest, uploaded: Any, workflow: Workflow) -> None:
    _discard_upload(request)
    _sweep_uploads()
    token = secrets.token_hex(16)
    with (uploads_dir() / token).open("wb") as f:
        for chunk in uploaded.chunks():
            f.write(chunk)
    request.session[UPLOAD_SESSION_KEY] = {"token": token, "filename": uploaded.name, "workflow": workflow.pk}


def _discard_upload(request: HttpRequest) -> None:
    upload = _session_upload(request)
    if upload is not None:
        upload.path.unlink(missing_ok=True)
    request.session.pop(UPLOAD_SESSION_KEY, None)


def _sweep_uploads() -> None:
    """Remove uploads abandoned on the preview page."""
    cutoff = time.time() - UPLOAD_MAX_AGE
    for path in uploads_dir().iterdir():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


@staff_member_required
@require_GET
def batch_new(request: HttpRequest) -> HttpResponse:
    _require(request, ADD_PERMISSION)
    return _render_new(request, UploadForm(initial={"workflow": request.GET.get("workflow")}))


def _render_new(request: HttpRequest, form: UploadForm, status: int = 200) -> HttpResponse:
    context = {"form": form, "workflows": Workflow.objects.all()}
    return render(request, "batches/batch_new.html", context, status=status)


@staff_member_required
@require_POST
def batch_upload(request: HttpRequest) -> HttpResponse:
    _require(request, ADD_PERMISSION)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_new(request, form, status=400)
    _store_upload(request, form.cleaned_data["file"], form.cleaned_data["workflow"])
    return redirect("batches:batch_preview")


def _upload_and_workflow(request: HttpRequest) -> tuple[Upload, Workflow] | None:
    upload = _session_upload(request)
    workflow = Workflow.objects.filter(pk=upload.workflow_id).first() if upload else None
    if upload is None or workflow is None:
        _discard_upload(request)
        messages.warning(request, gettext("Upload a file first."))
        return None
    return upload, workflow


@staff_member_required
@require_GET
def batch_preview(request: HttpRequest) -> HttpResponse:
    _require(request, ADD_PERMISSION)
    found = _upload_and_workflow(request)
    if found is None:
        return redirect("batches:batch_new")
    upload, workflow = found
    initial = {"name": Path(upload.filename).stem, "concurrency": workflow.concurrency, "max_retries": 2}
    return _render_preview(request, upload, workflow, ImportOptionsForm(initial={**initial, "start": True}))


def _render_preview(request: HttpRequest, upload: Upload, workflow: Workflow, form: ImportOptionsForm) -> HttpResponse:
    variables = dify.fetch_parameters(lifecycle.app_settings(workflow))
    try:
        parsed, rows = importers.preview(
            upload.path, filename=upload.filename, variables=variables or None, mode=workflow.mode, limit=PREVIEW_ROWS
        )
        total = importers.count_rows(
            upload.path, filename=upload.filename, variables=variables or None, mode=workflow.mode
        )
    except importers.ImportFileError as exc:
        return _refuse_file(request, exc)
    context = {
        "upload": upload,
        "workflow": workflow,
        "parsed": parsed,
        "total": total,
        "encoding": ENCODINGS.get(parsed.encoding or "", parsed.encoding),
        "delimiter": DELIMITERS.get(parsed.delimiter or "", parsed.delimiter),
        "rows": [[_cell(row.get(column)) for column in parsed.columns] for row in rows],
        "variables": variables,
        "mapping": _mapping(parsed.columns, variables or []),
        "unused": [v for v in variables or [] if v.variable not in parsed.columns],
        "form": form,
    }
    return render(request, "batches/batch_preview.html", context)


ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": _("UTF-8 with BOM"), "gb18030": "GB18030 / GBK"}
DELIMITERS = {",": _("comma (,)"), ";": _("semicolon (;)"), "\t": _("tab"), "|": _("vertical bar (|)")}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _mapping(columns: list[str], variables: list[dify.InputVariable]) -> list[tuple[str, dify.InputVariable | None]]:
    by_name = {variable.variable: variable for variable in variables}
    return [(column, by_name.get(column)) for column in columns]


def _refuse_file(request: HttpRequest, error: Exception) -> HttpResponse:
    _discard_upload(request)
    messages.error(request, gettext("The file cannot be imported: %(error)s") % {"error": error})
    return redirect("batches:batch_new")


@staff_member_required
@require_POST
def batch_import(request: HttpRequest) -> HttpResponse:
    _require(request, ADD_PERMISSION)
    found = _upload_and_workflow(request)
    if found is None:
        return redirect("batches:batch_new")
    upload, workflow = found
    form = ImportOptionsForm(request.POST)
    if not form.is_valid():
        return _render_preview(request, upload, workflow, form)
    try:
        batch = lifecycle.import_batch(
            workflow, upload.path, filename=upload.filename, options=form.import_options(request.user.pk)
        )
    except importers.ImportFileError as exc:
        return _refuse_file(request, exc)
    _discard_upload(request)
    text = ngettext("Imported %(count)d row.", "Imported %(count)d rows.", batch.total) % {"count": batch.total}
    messages.success(request, text)
    return redirect("batches:batch_detail", pk=batch.pk)


@staff_member_required
@require_GET
def workflow_template(request: HttpRequest, pk: int) -> HttpResponse:
    # Built from the variables read when the workflow was saved: a GET never sends the key anywhere.
    workflow = get_object_or_404(Workflow, pk=pk)
    variables = workflows.cached_input_variables(workflow)
    if variables is None:
        text = gettext(
            "The input variables of %(workflow)s are not known yet: save the workflow while its app answers."
        )
        messages.error(request, text % {"workflow": workflow.name})
        return redirect(reverse("batches:batch_new") + f"?workflow={workflow.pk}")
    header = (["query"] if workflow.mode == Mode.CHAT else []) + [variable.label for variable in variables]
    if not header:
        text = gettext("%(workflow)s declares no input variables: name the columns as you like.")
        messages.warning(request, text % {"workflow": workflow.name})
        return redirect(reverse("batches:batch_new") + f"?workflow={workflow.pk}")
    response = HttpResponse(exporters.UTF8_BOM + _csv_line(header), content_type="text/csv; charset=utf-8")
    filename = f"template-{slugify(workflow.name, allow_unicode=True) or workflow.pk}.csv"
    response["Content-Disposition"] = exporters.attachment(filename)
    return response


def _csv_line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([exporters.cell_value(cell) for cell in cells])
    return buffer.getvalue().encode()
