"""The "Check Dify now" button of the batch page: the same probe as `manage.py probe_upstream`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from batches.roles import CONTROL_BATCH
from batches.selectors import batches as selectors
from batches.services.upstream_health import probe_upstream
from batches.views.access import require


@staff_member_required
@require_POST
def batch_probe(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CONTROL_BATCH)
    batch = selectors.batch_or_404(pk, "workflow")
    probe = probe_upstream(batch.workflow_id)
    if probe.upstream.waiting:
        error = probe.failure or probe.upstream.last_error
        messages.warning(request, gettext("Dify still does not answer: %(error)s") % {"error": error})
    elif probe.failure:  # the circuit is closed (no streak yet), but this probe got no answer
        messages.warning(request, gettext("Dify does not answer: %(error)s") % {"error": probe.failure})
    else:
        messages.success(request, gettext("Dify answers: the batch carries on."))
    return redirect("batches:batch_detail", pk=batch.pk)
