"""The batch buttons (start, pause, resume, cancel, retry failed, repoint) pressed on a batch's page: which it offers,
and what pressing one says (the buttons themselves are the table `services.controls.CONTROLS`); and the concurrency.

A state that no longer allows a button's service (another person was quicker) is a warning, not an error.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext

from batches.forms.batches import ConcurrencyForm
from batches.models import BatchTask
from batches.services import lifecycle, workflows
from batches.services.audit import Actor
from batches.services.controls import CONTROLS, Control
from batches.services.transitions import TransitionError
from batches.views.access import first_error

Outcome = tuple[int, str]  # a messages level and the text to show
_RETRY = CONTROLS["retry-failed"]  # what its button says is also what the failures page's retries say


def press(control: Control, batch: BatchTask, actor: Actor) -> Outcome:
    """What `control` did to `batch`, as the page says it."""
    rows = _refusable(control, batch.pk, actor)
    if rows is None or (control.per_row and not rows):
        return messages.WARNING, str(control.refused)
    text = control.done % {"count": rows} if control.changes_rows else str(control.done)
    return messages.SUCCESS, text


def _refusable(control: Control, batch_id: int, actor: Actor) -> int | None:
    """The rows `control` changed, or None when the batch's state refused it."""
    try:
        return control.run(batch_id, actor)
    except TransitionError:
        return None


def retried(report: lifecycle.RetryReport, *, show_skipped: bool, cancelled: bool = False) -> Outcome:
    """What a retry says: how many rows run again, and (for chosen rows) how many no longer could."""
    if not report.retried:
        return messages.WARNING, str(_RETRY.refused)
    if cancelled:
        text = ngettext("Running %(count)d cancelled row.", "Running %(count)d cancelled rows.", report.retried)
        text = text % {"count": report.retried}
    else:
        text = _RETRY.done % {"count": report.retried}
    if not (show_skipped and report.skipped):
        return messages.SUCCESS, text
    skipped = ngettext(
        "%(count)d was skipped: it is no longer failed.",
        "%(count)d were skipped: they are no longer failed.",
        report.skipped,
    )
    return messages.WARNING, text + " " + skipped % {"count": report.skipped}


def set_concurrency(batch: BatchTask, form: ConcurrencyForm, actor: Actor) -> Outcome:
    if not form.is_valid():
        return messages.ERROR, first_error(form)
    concurrency = form.cleaned_data["concurrency"]
    try:
        lifecycle.set_concurrency(batch.pk, concurrency=concurrency, actor=actor)
    except TransitionError:
        return messages.WARNING, gettext("The concurrency of a finished or cancelled batch cannot be changed.")
    return messages.SUCCESS, gettext("Concurrency set to %(count)d.") % {"count": concurrency}


def offered(request: HttpRequest, batch: BatchTask, failed: int) -> list[tuple[str, Control]]:
    """The buttons this user may press for this batch now ("Retry failed" only when something failed, "Run on the
    workflow's new Dify" only when it moved)."""
    return [
        (name, control)
        for name, control in CONTROLS.items()
        if batch.status in control.states
        and request.user.has_perm(control.permission)
        and (name != "retry-failed" or failed)
        and (name != "repoint" or workflows.moved(batch))
    ]
