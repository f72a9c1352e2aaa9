"""The batch buttons (start, pause, resume, cancel, retry failed): who may press them, when, and what they say.

Each button calls one `lifecycle` service; a state that no longer allows it (another person was quicker) is a
warning, not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from batches.choices import BatchStatus
from batches.forms.batches import ConcurrencyForm
from batches.models import BatchTask
from batches.services import lifecycle, workflows
from batches.services.audit import Actor
from batches.services.transitions import ACTIVE, TransitionError
from batches.views.access import CONTROL_PERMISSION, RETRY_PERMISSION, first_error

Outcome = tuple[int, str]  # a messages level and the text to show


def _guarded(service: Callable[..., object], batch: BatchTask, actor: Actor, done: str, refused: str) -> Outcome:
    try:
        service(batch.pk, actor=actor)
    except TransitionError:
        return messages.WARNING, refused
    return messages.SUCCESS, done


def _start(batch: BatchTask, actor: Actor) -> Outcome:
    return _guarded(
        lifecycle.start_batch, batch, actor, gettext("Batch started."), gettext("Only a pending batch can be started.")
    )


def _pause(batch: BatchTask, actor: Actor) -> Outcome:
    return _guarded(
        lifecycle.pause_batch, batch, actor, gettext("Batch paused."), gettext("Only a running batch can be paused.")
    )


def _resume(batch: BatchTask, actor: Actor) -> Outcome:
    return _guarded(
        lifecycle.resume_batch, batch, actor, gettext("Batch resumed."), gettext("Only a paused batch can be resumed.")
    )


def _cancel(batch: BatchTask, actor: Actor) -> Outcome:
    try:
        cancelled = lifecycle.cancel_batch(batch.pk, actor=actor)
    except TransitionError:
        return messages.WARNING, gettext("A finished or cancelled batch cannot be cancelled.")
    text = ngettext(
        "Batch cancelled; %(count)d execution cancelled.", "Batch cancelled; %(count)d executions cancelled.", cancelled
    )
    return messages.SUCCESS, text % {"count": cancelled}


def _repoint(batch: BatchTask, actor: Actor) -> Outcome:
    if not workflows.repoint_batch(batch.pk, actor=actor):
        return messages.WARNING, gettext("This batch already runs on its workflow's Dify.")
    return messages.SUCCESS, gettext("This batch now runs on its workflow's current Dify; resume it to go on.")


def _retry_failed(batch: BatchTask, actor: Actor) -> Outcome:
    return retried(lifecycle.retry_failed(batch.pk, actor=actor), show_skipped=False)


def retried(report: lifecycle.RetryReport, *, show_skipped: bool, cancelled: bool = False) -> Outcome:
    """What a retry says: how many rows run again, and (for chosen rows) how many no longer could."""
    if not report.retried:
        return messages.WARNING, gettext("No failed executions to retry.")
    if cancelled:
        text = ngettext("Running %(count)d cancelled row.", "Running %(count)d cancelled rows.", report.retried)
    else:
        text = ngettext("Retrying %(count)d failed execution.", "Retrying %(count)d failed executions.", report.retried)
    text = text % {"count": report.retried}
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


@dataclass(frozen=True)
class Control:
    label: str | Promise
    permission: str
    states: tuple[str, ...]  # batch states in which the button is offered
    run: Callable[[BatchTask, Actor], Outcome]
    on_list: bool = True  # also offered as a row action on the batch list


CONTROLS = {
    "start": Control(_("Start"), CONTROL_PERMISSION, (BatchStatus.PENDING,), _start),
    "pause": Control(_("Pause"), CONTROL_PERMISSION, (BatchStatus.RUNNING,), _pause),
    "resume": Control(_("Resume"), CONTROL_PERMISSION, (BatchStatus.PAUSED,), _resume),
    "cancel": Control(_("Cancel"), CONTROL_PERMISSION, ACTIVE, _cancel, on_list=False),
    "retry-failed": Control(_("Retry failed"), RETRY_PERMISSION, tuple(BatchStatus), _retry_failed),
    # Its workflow's Dify moved: the key was entered for the new one, so the batch stops until staff choose this.
    "repoint": Control(_("Run on the workflow's new Dify"), CONTROL_PERMISSION, tuple(BatchStatus), _repoint, False),
}


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
