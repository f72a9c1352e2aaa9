""" "Run again": a form that makes a new batch from a batch's rows (all, failed or selected)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from batches.forms.rerun import RerunForm
from batches.models import BatchTask
from batches.roles import ADD_BATCH, CONTROL_BATCH
from batches.selectors import batches as selectors
from batches.services.rerun import Only, RerunError, rerun_batch, row_count
from batches.views.access import require


@staff_member_required
@require_http_methods(["GET", "POST"])
def batch_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, ADD_BATCH)
    source = selectors.batch_or_404(pk, "workflow")
    may_start = request.user.has_perm(CONTROL_BATCH)
    if request.method == "GET":
        initial = {
            "only": _only(request.GET),
            "execution": [v for v in request.GET.getlist("execution") if v.isdigit()],
        }
        return _render(request, source, RerunForm(initial=initial, source=source, may_start=may_start))
    form = RerunForm(request.POST, source=source, may_start=may_start)
    try:
        batch = rerun_batch(source.pk, options=form.options(request.user.pk)) if form.is_valid() else None
    except RerunError as exc:
        form.add_error(None, str(exc))
        batch = None
    if batch is None:
        return _render(request, source, form, status=400)
    text = ngettext("Created a batch of %(count)d row.", "Created a batch of %(count)d rows.", batch.total)
    messages.success(request, text % {"count": batch.total})
    return redirect("batches:batch_detail", pk=batch.pk)


def _only(data: QueryDict) -> str:
    only = data.get("only", Only.ALL)
    return only if only in Only.CHOICES else Only.ALL


def _render(request: HttpRequest, source: BatchTask, form: RerunForm, status: int = 200) -> HttpResponse:
    data = request.POST if form.is_bound else request.GET
    only = _only(data)
    ids = [int(v) for v in data.getlist("execution") if v.isdigit() and len(v) < 19]
    context = {"source": source, "form": form, "only": only, "rows": row_count(source.pk, only=only, execution_ids=ids)}
    return render(request, "batches/batch_rerun.html", context, status=status)
