"""The admin's batch actions, built from one table by `batch_action`, and the custom action permissions.

Each action calls a lifecycle service once per selected batch (each call its own guarded write) and counts the
batches whose state refused it (`TransitionError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from batches.models import BatchTask
from batches.services import audit, lifecycle, workflows
from batches.services.audit import Actor
from batches.services.transitions import TransitionError

CONTROL_PERMISSION = "batches.control_batchtask"
RETRY_PERMISSION = "batches.retry_execution"


@dataclass(frozen=True)
class BatchAction:
    """One admin action over the selected batches: the lifecycle call made for each, and how it reports."""

    description: Any  # a lazy translation
    permission: str  # "control" or "retry" (PermissionActionsMixin)
    run: Callable[[int, Actor], int]  # answers the rows it changed; raises TransitionError when the state refuses
    done: Promise  # ngettext_lazy(…, "count"): batches changed (rows changed with `per_row`)
    skipped: Promise  # ngettext_lazy(…, "count"): batches skipped
    per_row: bool = False  # count rows; a batch where no row changed was skipped (nothing to retry)
    rows_too: bool = False  # add "(N executions)" to the text


def batch_action(name: str, spec: BatchAction) -> Callable[..., None]:
    """The admin action `name`: `spec.run` once per selected batch, each call its own guarded write."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[BatchTask]) -> None:
        changed = rows = 0
        pks = list(queryset.values_list("pk", flat=True))
        actor = audit.of_admin(request)
        for pk in pks:
            try:
                count = spec.run(pk, actor)
            except TransitionError:
                continue
            changed += 1 if count or not spec.per_row else 0
            rows += count
        text = spec.done % {"count": rows if spec.per_row else changed}
        if spec.rows_too:
            rows_text = ngettext("%(rows)d execution", "%(rows)d executions", rows) % {"rows": rows}
            text = gettext("%(batches)s (%(rows)s)") % {"batches": text, "rows": rows_text}
        skipped = len(pks) - changed
        report(modeladmin, request, text, skipped, spec.skipped % {"count": skipped})

    action.__name__ = name
    return admin.action(description=spec.description, permissions=[spec.permission])(action)


def _no_rows(service: Callable[..., object]) -> Callable[[int, Actor], int]:
    """A service that changes only the batch's state (start, pause, resume): it changes no rows."""

    def run(batch_id: int, actor: Actor) -> int:
        service(batch_id, actor=actor)
        return 0

    return run


def _repointed(batch_id: int, actor: Actor) -> int:
    if not workflows.repoint_batch(batch_id, actor=actor):
        raise TransitionError(f"batch {batch_id} already runs on its workflow's Dify")
    return 0


def _cancelled_rows(batch_id: int, actor: Actor) -> int:
    return lifecycle.cancel_batch(batch_id, actor=actor)


def _retried_rows(batch_id: int, actor: Actor) -> int:
    return lifecycle.retry_failed(batch_id, actor=actor).retried


BATCH_ACTIONS = {
    "start": BatchAction(
        _("Start"),
        "control",
        _no_rows(lifecycle.start_batch),
        ngettext_lazy("Started %(count)d batch", "Started %(count)d batches", "count"),
        ngettext_lazy("%(count)d was not pending", "%(count)d were not pending", "count"),
    ),
    "pause": BatchAction(
        _("Pause"),
        "control",
        _no_rows(lifecycle.pause_batch),
        ngettext_lazy("Paused %(count)d batch", "Paused %(count)d batches", "count"),
        ngettext_lazy("%(count)d was not running", "%(count)d were not running", "count"),
    ),
    "resume": BatchAction(
        _("Resume"),
        "control",
        _no_rows(lifecycle.resume_batch),
        ngettext_lazy("Resumed %(count)d batch", "Resumed %(count)d batches", "count"),
        ngettext_lazy("%(count)d was not paused", "%(count)d were not paused", "count"),
    ),
    "cancel": BatchAction(
        _("Cancel"),
        "control",
        _cancelled_rows,
        ngettext_lazy("Cancelled %(count)d batch", "Cancelled %(count)d batches", "count"),
        ngettext_lazy(
            "%(count)d was already finished or cancelled", "%(count)d were already finished or cancelled", "count"
        ),
        rows_too=True,
    ),
    # Its workflow's Dify moved: staff choose to send its remaining rows there (services.workflows).
    "repoint": BatchAction(
        _("Run on the workflow's new Dify"),
        "control",
        _repointed,
        ngettext_lazy("Pointed %(count)d batch at its workflow's Dify", "Pointed %(count)d batches at it", "count"),
        ngettext_lazy("%(count)d had not moved", "%(count)d had not moved", "count"),
    ),
    "retry_failed": BatchAction(
        _("Retry failed executions"),
        "retry",
        _retried_rows,
        ngettext_lazy("Retrying %(count)d failed execution", "Retrying %(count)d failed executions", "count"),
        ngettext_lazy("%(count)d batch had none", "%(count)d batches had none", "count"),
        per_row=True,
    ),
}


def report(modeladmin: admin.ModelAdmin, request: HttpRequest, done: str, skipped: int, skipped_text: str) -> None:
    if skipped:
        text = gettext("%(done)s; %(skipped)s") % {"done": done, "skipped": skipped_text}
        modeladmin.message_user(request, text, messages.WARNING)
    else:
        modeladmin.message_user(request, done, messages.SUCCESS)


class PermissionActionsMixin:
    """`permissions=["control"]` and `["retry"]` on admin actions resolve to these custom permissions."""

    def has_control_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CONTROL_PERMISSION)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RETRY_PERMISSION)
