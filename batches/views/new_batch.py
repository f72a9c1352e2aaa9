"""A new batch in three steps: upload a file (kept by `batches.imports.uploads`), preview it, import it; and the CSV
template of a workflow's input variables."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_POST

from batches.choices import Mode
from batches.dify.types import InputVariable
from batches.exports import batches as exporters
from batches.forms.batches import ImportOptionsForm, UploadForm
from batches.forms.mapping import ColumnMapForm
from batches.imports import importers, mapping, uploads
from batches.imports.uploads import Upload
from batches.models import Workflow
from batches.roles import ADD_BATCH, CONTROL_BATCH
from batches.selectors import batches as selectors
from batches.selectors.cost import estimate_for_file
from batches.services import audit, mappings, workflows
from batches.services.imports import import_batch
from batches.views import presenters, previews
from batches.views.access import require


@staff_member_required
@require_GET
def batch_new(request: HttpRequest) -> HttpResponse:
    require(request, ADD_BATCH)
    return _render_new(request, UploadForm(initial={"workflow": request.GET.get("workflow")}))


def _render_new(request: HttpRequest, form: UploadForm, status: int = 200) -> HttpResponse:
    context = {"form": form, "workflows": selectors.workflows()}
    return render(request, "batches/batch_new.html", context, status=status)


@staff_member_required
@require_POST
def batch_upload(request: HttpRequest) -> HttpResponse:
    require(request, ADD_BATCH)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_new(request, form, status=400)
    uploads.store(request, form.cleaned_data["file"], workflow_id=form.cleaned_data["workflow"].pk)
    return redirect("batches:batch_preview")


def _upload_and_workflow(request: HttpRequest) -> tuple[Upload, Workflow] | None:
    upload = uploads.current(request)
    workflow = selectors.workflow(upload.workflow_id) if upload else None
    if upload is None or workflow is None:
        uploads.discard(request)
        messages.warning(request, gettext("Upload a file first."))
        return None
    return upload, workflow


@staff_member_required
@require_GET
def batch_preview(request: HttpRequest) -> HttpResponse:
    require(request, ADD_BATCH)
    found = _upload_and_workflow(request)
    if found is None:
        return redirect("batches:batch_new")
    upload, workflow = found
    initial = {"name": Path(upload.filename).stem, "concurrency": workflow.concurrency, "max_retries": 2}
    return _render_preview(
        request, upload, workflow, ImportOptionsForm(initial={**initial, "start": True}, may_start=_may_start(request))
    )


def _may_start(request: HttpRequest) -> bool:
    return request.user.has_perm(CONTROL_BATCH)  # starting sends paid calls


@staff_member_required
@require_POST
def batch_map(request: HttpRequest) -> HttpResponse:
    """Apply the column mapping chosen on the preview, then show the preview with it."""
    require(request, ADD_BATCH)
    _with_posted_mapping(request)
    return redirect("batches:batch_preview")


def _posted_mapping(request: HttpRequest, upload: Upload, workflow: Workflow) -> dict[str, str] | None:
    """The mapping posted with the preview's form (None: none posted, or not one of the offered choices)."""
    variables = workflows.read_input_variables(workflow)
    try:
        shown = _shown(upload, workflow, variables)
    except importers.ImportFileError:
        return None
    form = ColumnMapForm(
        request.POST, header=shown.facts.header, variables=variables or None, mode=workflow.mode, chosen=shown.chosen
    )
    return form.chosen() if "column_0" in request.POST and form.is_valid() else None


def _shown(upload: Upload, workflow: Workflow, variables: list[InputVariable] | None) -> previews.Preview:
    chosen = upload.chosen
    return previews.preview(
        upload, mode=workflow.mode, variables=variables, chosen=chosen, remembered=workflow.column_map or {}
    )


def _render_preview(request: HttpRequest, upload: Upload, workflow: Workflow, form: ImportOptionsForm) -> HttpResponse:
    variables = workflows.read_input_variables(workflow)
    try:
        shown = _shown(upload, workflow, variables)  # kept beside the upload: a reload reads no file again
    except importers.ImportFileError as exc:
        return _refuse_file(request, exc)
    context = _preview(upload, workflow, variables, shown)
    return render(request, "batches/batch_preview.html", {**context, "form": form})


def _preview(
    upload: Upload, workflow: Workflow, variables: list[InputVariable] | None, shown: previews.Preview
) -> dict[str, Any]:
    """What the preview shows: the file's own header and first rows, the variable each column gives (a choice per
    header), and the check of that mapping (the row count, or why it does not fit); for a ZIP, its files."""
    facts, check = shown.facts, shown.check
    by_name = {variable.variable: variable for variable in variables or []}
    columns_form = ColumnMapForm(
        header=facts.header, variables=variables or None, mode=workflow.mode, chosen=shown.chosen
    )
    targets = [shown.chosen.get(cell, mapping.IGNORE) for cell in facts.header]
    return {
        "archive": check.archive,
        "estimate": estimate_for_file(workflow, check.total) if check.total else None,
        "upload": upload,
        "workflow": workflow,
        "parsed": SimpleNamespace(format=facts.format, header=facts.header, columns=[t for t in targets if t]),
        "total": check.total,
        "map_error": check.error,
        "encoding": presenters.ENCODINGS.get(facts.encoding or "", facts.encoding),
        "delimiter": presenters.DELIMITERS.get(facts.delimiter or "", facts.delimiter),
        "rows": facts.rows,
        "heads": list(zip(facts.header, targets, strict=True)),
        "variables": variables,
        "mapping": [
            (cell, by_name.get(target), field)
            for (cell, field), target in zip(columns_form.rows(), targets, strict=True)
        ],
        "unused": [v for v in variables or [] if v.variable not in targets],
    }


def _refuse_file(request: HttpRequest, error: Exception) -> HttpResponse:
    uploads.discard(request)
    messages.error(request, gettext("The file cannot be imported: %(error)s") % {"error": error})
    return redirect("batches:batch_new")


@staff_member_required
@require_POST
def batch_import(request: HttpRequest) -> HttpResponse:
    require(request, ADD_BATCH)
    found = _with_posted_mapping(request)
    if found is None:
        return redirect("batches:batch_new")
    upload, workflow = found
    form = ImportOptionsForm(request.POST, may_start=_may_start(request))
    if not form.is_valid():
        return _render_preview(request, upload, workflow, form)
    return _import(request, upload, workflow, form)


def _with_posted_mapping(request: HttpRequest) -> tuple[Upload, Workflow] | None:
    """The upload and its workflow, with the column mapping the form posted (kept for the next view)."""
    found = _upload_and_workflow(request)
    if found is None:
        return None
    upload, workflow = found
    chosen = _posted_mapping(request, upload, workflow)
    if chosen is not None:
        uploads.choose(request, chosen)
        upload = dataclasses.replace(upload, chosen=chosen)
    return upload, workflow


def _import(request: HttpRequest, upload: Upload, workflow: Workflow, form: ImportOptionsForm) -> HttpResponse:
    try:
        chosen = _shown(upload, workflow, workflows.read_input_variables(workflow)).chosen
        options = form.import_options(request.user.pk)
        options = dataclasses.replace(options, mapping=chosen, actor=audit.of_request(request))
        batch = import_batch(workflow, upload.path, filename=upload.filename, options=options)
    except mapping.MappingError:
        return _render_preview(request, upload, workflow, form)  # the preview says why
    except importers.ImportFileError as exc:
        return _refuse_file(request, exc)
    mappings.remember(workflow.pk, chosen)
    uploads.discard(request)
    text = ngettext("Imported %(count)d row.", "Imported %(count)d rows.", batch.total) % {"count": batch.total}
    messages.success(request, text)
    return redirect("batches:batch_detail", pk=batch.pk)


@staff_member_required
@require_GET
def workflow_template(request: HttpRequest, pk: int) -> HttpResponse:
    # Built from the variables read when the workflow was saved: a GET never sends the key anywhere.
    workflow = selectors.workflow_or_404(pk)
    variables = workflows.cached_input_variables(workflow)
    header = (["query"] if workflow.mode == Mode.CHAT else []) + [variable.label for variable in variables or []]
    if variables is None or not header:
        return _no_template(request, workflow, known=variables is not None)
    response = HttpResponse(exporters.UTF8_BOM + _csv_line(header), content_type="text/csv; charset=utf-8")
    filename = f"template-{slugify(workflow.name, allow_unicode=True) or workflow.pk}.csv"
    response["Content-Disposition"] = exporters.attachment(filename)
    return response


def _no_template(request: HttpRequest, workflow: Workflow, *, known: bool) -> HttpResponse:
    if known:
        text = gettext("%(workflow)s declares no input variables: name the columns as you like.")
        messages.warning(request, text % {"workflow": workflow.name})
    else:
        text = gettext(
            "The input variables of %(workflow)s are not known yet: save the workflow while its app answers."
        )
        messages.error(request, text % {"workflow": workflow.name})
    return redirect(reverse("batches:batch_new") + f"?workflow={workflow.pk}")


def _csv_line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([exporters.cell_value(cell) for cell in cells])
    return buffer.getvalue().encode()
