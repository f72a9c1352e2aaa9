"""Admin for workflows, batches, executions and attempts; actions only call `batches.services.lifecycle`.

The batch actions and their permissions are in `batches.admin.actions`; formatting shared with the staff pages
is in `batches.views.presenters`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from batches.admin import lists as admin_lists
from batches.admin.actions import BATCH_ACTIONS, PermissionActionsMixin, batch_action, report
from batches.admin.ops import ReadOnlyAdmin
from batches.choices import ExecutionStatus
from batches.display import clipping
from batches.forms.executions import ExecutionRetryAdminForm
from batches.forms.workflows import WorkflowAdminForm
from batches.imports.inputs import InputError
from batches.models import Attempt, BatchTask, Execution, Workflow
from batches.selectors import batches as selectors
from batches.selectors.batches import upstream_of
from batches.services import audit, lifecycle, retention, workflows
from batches.services.transitions import TransitionError
from batches.views.presenters import last_check, progress_bar, waiting_message

RETRYABLE_STATES = (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
INPUTS_REFUSED = "batches_inputs_refused"  # the request's note of why the app refused the edited inputs
PRUNE_BUDGET = 10  # seconds of deleting within the admin's request; the minute sweep finishes what is left


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowAdminForm
    list_display = (
        "name",
        "mode",
        "base_url",
        "response_mode",
        "concurrency",
        "rpm_limit",
        "upstream",
        "input_variables_at",
    )
    list_filter = ("mode", "response_mode")
    list_select_related = ("throttle",)
    search_fields = ("name",)
    readonly_fields = ("upstream",)

    @admin.display(description=_("upstream"))
    def upstream(self, workflow: Workflow) -> str:
        """The upstream circuit: blank while Dify answers, else since when it has been waited for and why."""
        upstream = upstream_of(getattr(workflow, "throttle", None))
        answers = " ".join(filter(None, [str(_("answers")), last_check(upstream) and f"({last_check(upstream)})"]))
        return waiting_message(upstream) or answers

    actions = ("read_input_variables",)

    def save_model(self, request: HttpRequest, obj: Workflow, form: ModelForm, change: bool) -> None:
        workflows.save_workflow(obj, actor=audit.of_admin(request), changed=form.changed_data)
        # After the admin's transaction: never a network call while the row is locked.
        transaction.on_commit(lambda: self._read_variables(request, obj))

    def _read_variables(self, request: HttpRequest, workflow: Workflow) -> bool:
        if workflows.refresh_input_variables(workflow.pk) is not None:
            return True
        text = gettext("%(workflow)s: the app did not answer GET /parameters; its CSV template is not available yet.")
        self.message_user(request, text % {"workflow": workflow}, messages.WARNING)
        return False

    @admin.action(description=_("Read the apps' input variables again"), permissions=["change"])
    def read_input_variables(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        read = sum(self._read_variables(request, workflow) for workflow in queryset)
        text = ngettext(
            "Read the input variables of %(count)d workflow", "Read the input variables of %(count)d workflows", read
        )
        self.message_user(request, text % {"count": read}, messages.SUCCESS)


class BatchChangeList(ChangeList):
    """Counts the page's executions per state in one aggregate query for the progress column."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        batches = list(self.result_list)  # evaluates the page once; the template reuses the cached rows
        counts = selectors.state_counts([batch.pk for batch in batches])
        for batch in batches:
            batch.state_counts = counts[batch.pk]  # type: ignore[attr-defined]


@admin.register(BatchTask)
class BatchTaskAdmin(PermissionActionsMixin, admin.ModelAdmin):
    list_display = ("name", "workflow", "status", "progress", "created_at", "started_at", "finished_at")
    list_filter = ("status", "workflow")
    list_select_related = ("workflow",)
    search_fields = ("name",)
    date_hierarchy = "created_at"
    fields = (
        ("name", "workflow"),
        ("status", "status_reason"),
        "progress",
        ("concurrency", "max_retries"),
        ("failure_threshold", "failure_threshold_min_rows"),
        ("source_filename", "total"),
        "config",
        ("created_by", "created_at"),
        ("started_at", "finished_at"),
    )
    readonly_fields = (
        "workflow",
        "status",
        "status_reason",
        "progress",
        "source_filename",
        "total",
        "config",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    actions = [*(batch_action(name, spec) for name, spec in BATCH_ACTIONS.items()), "prune_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Changing how many rows run at once controls the batch: the pages' permission, not just "change".
        fields = list(super().get_readonly_fields(request, obj))
        return fields if self.has_control_permission(request) else [*fields, "concurrency"]

    def save_model(self, request: HttpRequest, obj: BatchTask, form: ModelForm, change: bool) -> None:
        # Only the edited settings are written: a whole-row save could undo a state change made meanwhile.
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        lifecycle.update_settings(obj.pk, actor=audit.of_admin(request), **changes)

    class Media:
        css = {"all": ("batches/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # batches are created by import

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BatchChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[BatchTask]:
        return super().get_queryset(request).shown()  # type: ignore[attr-defined]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list[str], dict[str, int], set[str], list]:
        """Summarise instead of listing every execution (a batch may hold 100k rows)."""
        batches = list(objs)
        executions = Execution.objects.filter(batch__in=batches)
        model_count = {
            str(BatchTask._meta.verbose_name_plural): len(batches),
            str(Execution._meta.verbose_name_plural): executions.count(),
            str(Attempt._meta.verbose_name_plural): Attempt.objects.filter(execution__in=executions).count(),
        }
        perms_needed = set() if self.has_delete_permission(request) else {str(BatchTask._meta.verbose_name)}
        return [str(batch) for batch in batches], model_count, perms_needed, []

    @admin.action(description=_("Delete for good, with their rows (ended batches only)"), permissions=["delete"])
    def prune_selected(self, request: HttpRequest, queryset: QuerySet[BatchTask]) -> TemplateResponse | None:
        """A confirmation page naming what goes; then the prune, for PRUNE_BUDGET seconds (the sweep does the rest)."""
        selected = list(queryset.values_list("pk", flat=True))
        batches = retention.prunable(older_than_days=0).filter(pk__in=selected)
        if not request.POST.get("post"):
            report = retention.measure(batches)
            context = {**self.admin_site.each_context(request), "opts": self.model._meta, "queryset": queryset,
                       "report": report, "skipped": len(selected) - report.batches,
                       "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME}  # fmt: skip
            return TemplateResponse(request, "admin/batches/batchtask/prune_confirmation.html", context)
        done = retention.prune(batches, budget_seconds=PRUNE_BUDGET, actor=audit.of_admin(request))
        text = ngettext("Deleted %(count)d batch", "Deleted %(count)d batches", done.batches) % {"count": done.batches}
        left = retention.under_way(selected)
        later = ngettext("%(count)d more goes within minutes", "%(count)d more go within minutes", left)
        self.message_user(request, f"{text}; {later % {'count': left}}" if left else text, messages.SUCCESS)
        return None

    @admin.display(description=_("progress"))
    def progress(self, batch: BatchTask) -> SafeString:
        counts = getattr(batch, "state_counts", None) or selectors.state_counts([batch.pk])[batch.pk]
        return render_to_string("batches/_progress.html", {"bar": progress_bar(counts)})


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = (
        "number",
        "trigger",
        "outcome",
        "error_type",
        "http_status",
        "upstream_status",
        "latency",
        "total_tokens",
        "started_at",
        "finished_at",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(admin_lists.BoundedListMixin, PermissionActionsMixin, admin.ModelAdmin):
    """Read-only, except "Save and retry": the inputs of a failed or cancelled row, edited, as a manual retry."""

    form = ExecutionRetryAdminForm
    list_display = ("batch", "row", "status", "error_type", "attempt_count", "started_at", "finished_at")
    list_filter = ("status", "error_type", "batch")
    list_select_related = ("batch",)
    search_fields = ("id",)  # shows the search box; `get_search_results` decides what a term finds
    search_help_text = _("An execution id, a Dify run id or task id; text only within one batch (filter by batch).")
    show_full_result_count = False  # never a count of the whole history
    fieldsets = (
        (None, {"fields": (("batch", "index"), "status", "inputs", "shown_outputs")}),
        (_("Error"), {"fields": (("error_type", "http_status"), "error")}),
        (
            _("Attempts"),
            {"fields": (("attempt_count", "auto_retries", "interruptions", "manual_retries"), "next_trigger")},
        ),
        (_("Upstream"), {"fields": (("workflow_run_id", "task_id"), ("total_tokens", "elapsed"))}),
        (_("Lease"), {"fields": (("lease_owner", "lease_token", "lease_expires_at"), "not_before")}),
        (_("Times"), {"fields": (("started_at", "finished_at"),)}),
    )
    inlines = (AttemptInline,)
    actions = ("retry_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        return admin_lists.execution_ordering(request.GET.dict())

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return admin_lists.ExecutionChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Execution], search_term: str
    ) -> tuple[QuerySet[Execution], bool]:
        within_batch = bool(request.GET.get(admin_lists.BATCH_FILTER))
        return admin_lists.execution_search(queryset, search_term, within_batch=within_batch), False

    @admin.display(description=_("row"), ordering="index")
    def row(self, execution: Execution) -> int:
        """The 1-based row number people see everywhere (`index` stays 0-based in the JSON)."""
        return execution.index + 1

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Every field is state owned by the services; only a retryable row's inputs may be edited, to retry it (and
        # only by someone who may see the row: the retry permission alone must not open its page).
        return (
            obj is not None
            and obj.status in RETRYABLE_STATES
            and self.has_retry_permission(request)
            and super().has_view_permission(request, obj)
            and not clipping.too_large_to_edit(obj.inputs)
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.has_change_permission(request, obj):
            return self.fieldsets
        return [(name, {**options, "fields": _swap(options["fields"], "inputs", "shown_inputs")})
                for name, options in self.fieldsets]  # fmt: skip

    @admin.display(description=_("inputs"))
    def shown_inputs(self, obj: Execution) -> SafeString:
        return _clipped(obj.inputs)

    @admin.display(description=_("outputs"))
    def shown_outputs(self, obj: Execution) -> SafeString:
        return _clipped(obj.outputs) if obj.outputs is not None else SafeString("-")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # rows belong to their batch; delete the batch instead

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for name in flatten_fieldsets(self.get_fieldsets(request, obj)) if name != "inputs"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        refused = getattr(request, INPUTS_REFUSED, "")
        return type(form.__name__, (form,), {"refused": refused}) if refused else form

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except InputError as refused:
            # Only the retry (save_model, once the form is valid) asks the app whether it takes the edited inputs:
            # its refusal (nothing was written) is shown on the field by validating the form again with it.
            setattr(request, INPUTS_REFUSED, str(refused))
            return super().changeform_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        context["retry_allowed"] = self.has_change_permission(request, kwargs.get("obj"))
        return super().render_change_form(request, context, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Execution, form: ModelForm, change: bool) -> None:
        """ "Save and retry": the edited inputs are converted and written by the retry service, never by a plain save
        (InputError if the app would refuse them: see `changeform_view`)."""
        try:
            lifecycle.retry_execution(obj.pk, inputs=form.cleaned_data["inputs"], actor=audit.of_admin(request))
        except TransitionError:
            text = gettext("%(execution)s is no longer failed or cancelled; nothing changed.")
            self.message_user(request, text % {"execution": obj}, messages.WARNING)
        else:
            text = gettext("Retrying %(execution)s with the edited inputs.")
            self.message_user(request, text % {"execution": obj}, messages.SUCCESS)

    def response_change(self, request: HttpRequest, obj: Execution) -> HttpResponse:
        return HttpResponseRedirect(request.path)  # back to the row, now pending and read-only

    @admin.action(description=_("Retry selected"), permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        retry = lifecycle.retry_executions(queryset, include_cancelled=True, actor=audit.of_admin(request))
        done = ngettext("Retrying %(count)d execution", "Retrying %(count)d executions", retry.retried)
        skipped = ngettext(
            "%(count)d was not failed or cancelled", "%(count)d were not failed or cancelled", retry.skipped
        )
        report(self, request, done % {"count": retry.retried}, retry.skipped, skipped % {"count": retry.skipped})


def _swap(fields: Any, old: str, new: str) -> Any:
    if isinstance(fields, tuple | list):
        return tuple(_swap(item, old, new) for item in fields)
    return new if fields == old else fields


def _clipped(value: Any) -> SafeString:
    text, cut = clipping.clipped_json(value)
    note = gettext("Cut short: the full value is in the batch's JSONL export.") if cut else ""
    return format_html('<pre class="json">{}</pre>{}', text, format_html("<p>{}</p>", note) if note else "")


@admin.register(Attempt)
class AttemptAdmin(admin_lists.BoundedListMixin, ReadOnlyAdmin):
    list_display = (
        "execution",
        "number",
        "trigger",
        "outcome",
        "error_type",
        "http_status",
        "latency",
        "total_tokens",
        "started_at",
    )
    list_filter = ("outcome", "error_type", "trigger")
    list_select_related = ("execution",)
    ordering = ("-pk",)
    show_full_result_count = False
