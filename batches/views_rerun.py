""" "Run again": a form that makes a new batch from a batch's rows (all, failed or selected)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from batches.forms_rerun import RerunForm
from batches.models import BatchTask
from batches.services.rerun import Only, RerunError, RerunOptions, chosen_rows, rerun_batch
from batches.views import ADD_PERMISSION, _require


@staff_member_required
@require_http_methods(["GET", "POST"])
def batch_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, ADD_PERMISSION)
    source = get_object_or_404(BatchTask.objects.select_related("workflow"), pk=pk)
    if request.method == "GET":
        initial = {"only": _only(request), "execution": [v for v in request.GET.getlist("execution") if v.isdigit()]}
        form = RerunForm(initial=initial, source=source)
        return _render(request, source, form)
    form = RerunForm(request.POST, source=source)
    if not form.is_valid():
        return _render(request, source, form, status=400)
    try:
        batch = rerun_batch(source.pk, options=form.options(request.user.pk))
    except RerunError as exc:
        form.add_error(None, str(exc))
        return _render(request, source, form, status=400)
    text = ngettext("Created a batch of %(count)d row.", "Created a batch of %(count)d rows.", batch.total)
    messages.success(request, text % {"count": batch.total})
    return redirect("batches:batch_detail", pk=batch.pk)


def _only(request: HttpRequest) -> str:
    only = request.GET.get("only", Only.ALL)
    return only if only in Only.CHOICES else Only.ALL


def _render(request: HttpRequest, source: BatchTask, form: RerunForm, status: int = 200) -> HttpResponse:
    data = request.POST if form.is_bound else request.GET
    only = data.get("only", Only.ALL)
    only = only if only in Only.CHOICES else Only.ALL
    ids = [int(v) for v in data.getlist("execution") if v.isdigit() and len(v) < 19]
    rows = chosen_rows(source.pk, RerunOptions(only=only, execution_ids=ids)).count()
    context = {"source": source, "form": form, "only": only, "rows": rows}
    return render(request, "batches/batch_rerun.html", context, status=status)
