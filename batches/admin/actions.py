"""The admin's batch actions, one per batch control (`services.controls.CONTROLS`, the table the batch's page reads
too), and the custom action permissions.

Each action calls the control's service once per selected batch (each call its own guarded write) and counts the
batches whose state refused it (`TransitionError`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext

from batches.models import BatchTask
from batches.roles import CONTROL_BATCH, RETRY_EXECUTION
from batches.services import audit
from batches.services.audit import Actor
from batches.services.controls import CONTROLS, Control
from batches.services.transitions import TransitionError

# The names `permissions=[...]` takes for the controls' permissions (PermissionActionsMixin answers them).
_ACTION_PERMISSIONS = {CONTROL_BATCH: "control", RETRY_EXECUTION: "retry"}
# The admin's order of the actions (the page shows "retry-failed" before "repoint"); "_" in a name for the page's "-".
BATCH_ACTIONS = {
    name.replace("-", "_"): CONTROLS[name] for name in ("start", "pause", "resume", "cancel", "repoint", "retry-failed")
}


def batch_action(name: str, control: Control) -> Callable[..., None]:
    """The admin action `name`: `control.run` once per selected batch, each call its own guarded write."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[BatchTask]) -> None:
        pks = list(queryset.values_list("pk", flat=True))
        changed, rows = _run_each(control, pks, audit.of_admin(request))
        text = control.admin_done % {"count": rows if control.per_row else changed}
        if control.changes_rows and not control.per_row:  # the batches counted, then their rows
            rows_text = ngettext("%(rows)d execution", "%(rows)d executions", rows) % {"rows": rows}
            text = gettext("%(batches)s (%(rows)s)") % {"batches": text, "rows": rows_text}
        skipped = len(pks) - changed
        report(modeladmin, request, text, skipped, control.admin_skipped % {"count": skipped})

    action.__name__ = name
    return admin.action(description=control.description, permissions=[_ACTION_PERMISSIONS[control.permission]])(action)


def _run_each(control: Control, pks: list[int], actor: Actor) -> tuple[int, int]:
    """How many batches `control` changed, and how many rows: a batch whose state refused it is not counted, nor
    (with `per_row`) one where no row changed."""
    changed = rows = 0
    for pk in pks:
        try:
            count = control.run(pk, actor)
        except TransitionError:
            continue
        changed += 1 if count or not control.per_row else 0
        rows += count
    return changed, rows


def report(modeladmin: admin.ModelAdmin, request: HttpRequest, done: str, skipped: int, skipped_text: str) -> None:
    if skipped:
        text = gettext("%(done)s; %(skipped)s") % {"done": done, "skipped": skipped_text}
        modeladmin.message_user(request, text, messages.WARNING)
    else:
        modeladmin.message_user(request, done, messages.SUCCESS)


class PermissionActionsMixin:
    """`permissions=["control"]` and `["retry"]` on admin actions resolve to these custom permissions."""

    def has_control_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CONTROL_BATCH)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RETRY_EXECUTION)
