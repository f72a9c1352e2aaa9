"""One row's page: its inputs, outputs and attempts, and "edit and retry" for a failed or cancelled row."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from batches.choices import ExecutionStatus
from batches.display import clipping
from batches.forms.executions import InputsForm
from batches.imports.inputs import InputError
from batches.models import Execution
from batches.roles import RETRY_EXECUTION
from batches.selectors import batches as selectors
from batches.selectors import files as selectors_files
from batches.services import audit, lifecycle
from batches.services.transitions import TransitionError
from batches.views.access import require

RETRYABLE_STATES = (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


def _context(request: HttpRequest, execution: Execution, form: InputsForm | None) -> dict[str, Any]:
    editable = execution.status in RETRYABLE_STATES and request.user.has_perm(RETRY_EXECUTION)
    inputs_json, inputs_cut = clipping.clipped_json(execution.inputs)
    outputs_json, outputs_cut = (None, False) if execution.outputs is None else clipping.clipped_json(execution.outputs)
    extra_json, extra_cut = clipping.clipped_json(execution.extra) if execution.extra else (None, False)
    return {
        "execution": execution,
        "batch": execution.batch,
        "inputs_json": inputs_json,
        "outputs_json": outputs_json,
        "extra_json": extra_json,  # the file's ignored columns: kept, never sent
        "clipped": inputs_cut or outputs_cut or extra_cut,  # the page says where the full values are (the JSONL export)
        "attempts": selectors.attempts(execution),
        "files": selectors_files.row_files(execution),  # a ZIP's files (size, upload id) and URLs
        "form": (form or InputsForm.for_execution(execution))
        if editable and not clipping.too_large_to_edit(execution.inputs)
        else None,
    }


@staff_member_required
@require_GET
def execution_detail(request: HttpRequest, pk: int) -> HttpResponse:
    execution = selectors.execution_or_404(pk)
    return render(request, "batches/execution_detail.html", _context(request, execution, None))


@staff_member_required
@require_POST
def execution_retry(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, RETRY_EXECUTION)
    execution = selectors.execution_or_404(pk)
    form = InputsForm(request.POST)
    if not (form.is_valid() and _retried(request, execution, form)):
        return render(request, "batches/execution_detail.html", _context(request, execution, form), status=400)
    return redirect("batches:execution_detail", pk=execution.pk)


def _retried(request: HttpRequest, execution: Execution, form: InputsForm) -> bool:
    """The retry with the edited inputs; False if the app would refuse them (the reason goes on the field)."""
    try:
        lifecycle.retry_execution(execution.pk, inputs=form.cleaned_data["inputs"], actor=audit.of_request(request))
    except InputError as refused:
        form.add_error("inputs", str(refused))
        return False
    except TransitionError:
        messages.warning(request, gettext("Only a failed or cancelled execution can be retried; nothing changed."))
    else:
        messages.success(request, gettext("Execution queued for retry with the inputs shown."))
    return True
