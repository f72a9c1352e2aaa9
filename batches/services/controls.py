"""The batch controls: the one table the batch's page (its buttons) and the admin (its batch actions) read.

Each control is one `lifecycle` (or `workflows`) service called for one batch, the permission it needs, and what each
face says: the page about one batch, the admin about the batches selected. A state that refuses the service (another
person was quicker) raises `TransitionError`, which each face counts or shows as a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from batches.choices import ACTIVE, BatchStatus
from batches.roles import CONTROL_BATCH, RETRY_EXECUTION
from batches.services import lifecycle, workflows
from batches.services.audit import Actor
from batches.services.transitions import TransitionError

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise  # a lazy translation (the stubs' name; the package is for development)

Run = Callable[[int, Actor], int]  # a batch id and who asked -> the rows changed; raises TransitionError if refused


@dataclass(frozen=True)
class Control:
    """One thing staff do to a batch: the service, who may, when the page offers it, and what each face says."""

    run: Run
    permission: str  # a `roles` permission
    states: tuple[str, ...]  # the batch states in which the page offers its button
    label: StrPromise  # the page's button, and the admin action unless `admin_label`
    done: StrPromise  # the page's message; "%(count)d" rows changed when `changes_rows`
    refused: StrPromise  # the page's warning: the state refused it (or, with `per_row`, no row changed)
    admin_done: StrPromise  # ngettext_lazy(…, "count"): batches changed (rows changed with `per_row`)
    admin_skipped: StrPromise  # ngettext_lazy(…, "count"): batches skipped
    admin_label: StrPromise | None = None  # the admin action's description, when not the button's label
    # It ends or reopens rows (cancel, retry): the page's `done` counts them, the admin adds "(N executions)" unless
    # it counts rows already (`per_row`).
    changes_rows: bool = False
    per_row: bool = False  # a batch where no row changed was skipped (nothing to retry); the admin counts rows
    on_list: bool = True  # also offered as a row action on the batch list

    @property
    def description(self) -> StrPromise:
        return self.label if self.admin_label is None else self.admin_label


def _no_rows(service: Callable[..., object]) -> Run:
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


# In the page's order; the key is the page's URL slug (the admin action's name has "_" for "-").
CONTROLS = {
    "start": Control(
        _no_rows(lifecycle.start_batch),
        CONTROL_BATCH,
        (BatchStatus.PENDING,),
        label=_("Start"),
        done=_("Batch started."),
        refused=_("Only a pending batch can be started."),
        admin_done=ngettext_lazy("Started %(count)d batch", "Started %(count)d batches", "count"),
        admin_skipped=ngettext_lazy("%(count)d was not pending", "%(count)d were not pending", "count"),
    ),
    "pause": Control(
        _no_rows(lifecycle.pause_batch),
        CONTROL_BATCH,
        (BatchStatus.RUNNING,),
        label=_("Pause"),
        done=_("Batch paused."),
        refused=_("Only a running batch can be paused."),
        admin_done=ngettext_lazy("Paused %(count)d batch", "Paused %(count)d batches", "count"),
        admin_skipped=ngettext_lazy("%(count)d was not running", "%(count)d were not running", "count"),
    ),
    "resume": Control(
        _no_rows(lifecycle.resume_batch),
        CONTROL_BATCH,
        (BatchStatus.PAUSED,),
        label=_("Resume"),
        done=_("Batch resumed."),
        refused=_("Only a paused batch can be resumed."),
        admin_done=ngettext_lazy("Resumed %(count)d batch", "Resumed %(count)d batches", "count"),
        admin_skipped=ngettext_lazy("%(count)d was not paused", "%(count)d were not paused", "count"),
    ),
    "cancel": Control(
        _cancelled_rows,
        CONTROL_BATCH,
        ACTIVE,
        label=_("Cancel"),
        done=ngettext_lazy(
            "Batch cancelled; %(count)d execution cancelled.",
            "Batch cancelled; %(count)d executions cancelled.",
            "count",
        ),
        refused=_("A finished or cancelled batch cannot be cancelled."),
        admin_done=ngettext_lazy("Cancelled %(count)d batch", "Cancelled %(count)d batches", "count"),
        admin_skipped=ngettext_lazy(
            "%(count)d was already finished or cancelled", "%(count)d were already finished or cancelled", "count"
        ),
        changes_rows=True,
        on_list=False,
    ),
    "retry-failed": Control(
        _retried_rows,
        RETRY_EXECUTION,
        tuple(BatchStatus),
        label=_("Retry failed"),
        done=ngettext_lazy("Retrying %(count)d failed execution.", "Retrying %(count)d failed executions.", "count"),
        refused=_("No failed executions to retry."),
        admin_label=_("Retry failed executions"),
        admin_done=ngettext_lazy(
            "Retrying %(count)d failed execution", "Retrying %(count)d failed executions", "count"
        ),
        admin_skipped=ngettext_lazy("%(count)d batch had none", "%(count)d batches had none", "count"),
        changes_rows=True,
        per_row=True,
    ),
    # Its workflow's Dify moved: the key was entered for the new one, so the batch stops until staff choose this.
    "repoint": Control(
        _repointed,
        CONTROL_BATCH,
        tuple(BatchStatus),
        label=_("Run on the workflow's new Dify"),
        done=_("This batch now runs on its workflow's current Dify; resume it to go on."),
        refused=_("This batch already runs on its workflow's Dify."),
        admin_done=ngettext_lazy(
            "Pointed %(count)d batch at its workflow's Dify", "Pointed %(count)d batches at it", "count"
        ),
        admin_skipped=ngettext_lazy("%(count)d had not moved", "%(count)d had not moved", "count"),
        on_list=False,
    ),
}
