"""The "Check Dify now" button of the batch page: the same probe as `manage.py probe_upstream`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from batches.models import BatchTask
from batches.upstream_probe import probe

CONTROL_PERMISSION = "batches.control_batchtask"


@staff_member_required
@require_POST
def batch_probe(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.has_perm(CONTROL_PERMISSION):
        raise PermissionDenied
    batch = get_object_or_404(BatchTask.objects.select_related("workflow"), pk=pk)
    upstream = probe(batch.workflow)
    if upstream.waiting:
        messages.warning(request, gettext("Dify still does not answer: %(error)s") % {"error": upstream.last_error})
    else:
        messages.success(request, gettext("Dify answers: the batch carries on."))
    return redirect("batches:batch_detail", pk=batch.pk)
