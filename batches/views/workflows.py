"""The workflows page: list, add and edit apps, and test their connection (permissions as the admin's)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from batches.dify.pages import ConnectionReport
from batches.forms.workflows import WorkflowForm
from batches.models import Workflow
from batches.roles import ADD_WORKFLOW, CHANGE_WORKFLOW, VIEW_WORKFLOW
from batches.selectors import batches as selectors
from batches.services import audit, notify, workflows
from batches.views.access import require
from batches.views.presenters import waiting_message

DELIVERIES_SHOWN = 10


def _may_view(request: HttpRequest) -> None:
    """As in the admin, the permission to change workflows includes seeing them."""
    if not request.user.has_perm(CHANGE_WORKFLOW):
        require(request, VIEW_WORKFLOW)


def _posted(request: HttpRequest) -> Any:
    return request.POST if request.method == "POST" else None  # an empty POST is a bound, invalid form


@staff_member_required
@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    _may_view(request)
    found = selectors.workflows_with_upstreams()
    rows = [(workflow, throttle, waiting_message(selectors.upstream_of(throttle))) for workflow, throttle in found]
    context = {
        "rows": rows,
        "can_add": request.user.has_perm(ADD_WORKFLOW),
        "can_change": request.user.has_perm(CHANGE_WORKFLOW),
    }
    return render(request, "batches/workflow_list.html", context)


@staff_member_required
@require_http_methods(["GET", "POST"])
def workflow_add(request: HttpRequest) -> HttpResponse:
    require(request, ADD_WORKFLOW)
    form = WorkflowForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        workflow, _ = workflows.save_workflow(form.instance, actor=audit.of_request(request), changed=form.changed_data)
        messages.success(request, gettext("Workflow %(name)s added.") % {"name": workflow.name})
        _read_variables(request, workflow)
        return redirect("batches:workflow_edit", pk=workflow.pk)
    return _render_form(request, form, None, status=400 if form.is_bound else 200)


@staff_member_required
@require_http_methods(["GET", "POST"])
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_WORKFLOW)
    workflow = selectors.workflow_or_404(pk)
    form = WorkflowForm(_posted(request), instance=workflow)
    if request.method == "POST" and form.is_valid():
        workflows.save_workflow(form.instance, actor=audit.of_request(request), changed=form.changed_data)
        messages.success(request, gettext("Workflow %(name)s saved.") % {"name": workflow.name})
        _read_variables(request, workflow)
        return redirect("batches:workflow_edit", pk=workflow.pk)
    return _render_form(request, form, workflow, status=400 if form.is_bound else 200)


def _read_variables(request: HttpRequest, workflow: Workflow) -> None:
    """Read the app's input variables for its CSV template (which never calls the upstream); say when it fails."""
    if workflows.refresh_input_variables(workflow.pk) is None:
        text = gettext(
            "The app did not answer GET /parameters (a wrong base URL or API key, or Dify is down): "
            "use Test connection to see why."
        )
        messages.warning(request, text)


@staff_member_required
@require_POST
def workflow_test(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_WORKFLOW)
    workflow = selectors.workflow_or_404(pk)
    report = workflows.check_connection(workflow)
    if report.ok:
        workflows.refresh_input_variables(workflow.pk)
    return _render_form(request, WorkflowForm(instance=workflow), workflow, report=report)


@staff_member_required
@require_POST
def workflow_notify_test(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, CHANGE_WORKFLOW)
    queued = notify.send_test(selectors.workflow_or_404(pk).pk)
    messages.success(request, gettext("%(count)s test message(s) queued; see the deliveries.") % {"count": queued})
    return redirect("batches:workflow_edit", pk=pk)


@staff_member_required
@require_POST
def workflow_webhook_secret(request: HttpRequest, pk: int) -> HttpResponse:
    """A new webhook secret, shown on this answer only (never rendered again)."""
    require(request, CHANGE_WORKFLOW)
    workflow = selectors.workflow_or_404(pk)
    secret = notify.rotate_webhook_secret(workflow.pk, actor=audit.of_request(request))
    return _render_form(request, WorkflowForm(instance=workflow), workflow, secret=secret)


def _render_form(
    request: HttpRequest,
    form: WorkflowForm,
    workflow: Workflow | None,
    *,
    report: ConnectionReport | None = None,
    status: int = 200,
    secret: str = "",
) -> HttpResponse:
    context: dict[str, Any] = {"form": form, "workflow": workflow, "report": report, "secret": secret}
    if workflow is not None:
        context["deliveries"] = workflow.notifications.select_related("batch")[:DELIVERIES_SHOWN]
    response = render(request, "batches/workflow_form.html", context, status=status)
    if secret:
        response["Cache-Control"] = "no-store"
    return response
