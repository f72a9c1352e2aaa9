"""Workflow settings that guard the API key: where it may be sent, and the app's input variables read with it.

`save_workflow` is the one write path of a workflow's settings (the admin, `add_workflow`, the workflows page).
The rule: a stored key is only ever sent to the base URL it was entered for. Two halves hold it:
- every place that edits a workflow needs the key again with a new base URL, so the workflow row always pairs a
  URL with the key entered for it;
- a batch calls the base URL of its snapshot, and `app_settings` hands out the workflow's key only while that URL
  is still the workflow's (else `DifyMoved`). Every call of every path (start, resume, a runner's claim, retries,
  edit-and-retry's /parameters, uploads, stop, the run look-up) gets its key there, so none can pair them wrongly.
  A moved batch pauses until staff point it at the workflow's current Dify (`repoint_batch`) or run it again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from batches.db.crypto import is_unreadable
from batches.dify import pages
from batches.dify.pages import ConnectionReport
from batches.dify.types import AppSettings, InputVariable
from batches.models import BatchTask, Workflow
from batches.services import audit

logger = logging.getLogger(__name__)
MOVED = "the workflow's Dify moved: point this batch at it, or run it again on it"
KEY_REQUIRED = _("The base URL changed: enter the API key again (a stored key is only sent where it was entered for).")


class DifyMoved(Exception):
    """A batch's base URL is no longer its workflow's: the stored key was entered for another place."""


def same_place(url: str, other: str) -> bool:
    return url.rstrip("/") == other.rstrip("/")


def app_settings(workflow: Workflow, *, config: dict[str, Any] | None = None) -> AppSettings:
    """What a call needs: a batch's snapshot (`config`, else the workflow's own settings) and the workflow's key.

    The key is read on every call, so a corrected key takes effect; it goes only to the URL it was entered for,
    which is the workflow's current one (DifyMoved when the snapshot's differs).
    """
    config = config or workflow.snapshot()
    if not same_place(config["base_url"], workflow.base_url):
        raise DifyMoved(MOVED)
    return AppSettings(
        mode=config["mode"],
        base_url=config["base_url"],
        api_key=workflow.api_key,
        response_mode=config["response_mode"],
        timeout=config["timeout"],
    )


@transaction.atomic
def repoint_batch(batch_id: int, *, actor: audit.Actor | None = None) -> bool:
    """Point a batch made for another Dify at its workflow's current one (staff chose it: its remaining rows then
    run there). The old URL is kept in the snapshot's `moved_from`; False when the batch had not moved."""
    batch = BatchTask.objects.select_for_update(of=("self",)).select_related("workflow").get(pk=batch_id)
    old, new = batch.config["base_url"], batch.workflow.base_url
    if same_place(old, new):
        return False
    moved_from = [*batch.config.get("moved_from", []), old]
    BatchTask.objects.filter(pk=batch_id).update(config={**batch.config, "base_url": new, "moved_from": moved_from})
    audit.record(
        actor, audit.Action.SETTINGS, batch_id=batch_id, workflow_id=batch.workflow_id, detail={"moved_to": new}
    )
    logger.info("batch %s pointed at its workflow's current Dify", batch_id)
    return True


def moved(batch: BatchTask) -> bool:
    return not same_place(batch.config.get("base_url", ""), batch.workflow.base_url)


def base_url_changed(workflow: Workflow, *, base_url: str | None) -> bool:
    """Whether `base_url` names another place than the stored workflow's (a new workflow has none yet)."""
    if workflow.pk is None or base_url is None:
        return False
    stored = Workflow.objects.filter(pk=workflow.pk).values_list("base_url", flat=True).first()
    return stored is not None and not same_place(stored, base_url)


def key_required(workflow: Workflow, *, base_url: str | None, api_key: str | None) -> bool:
    """The rule: the base URL changes and no API key was entered with it (every editing form applies it)."""
    return not api_key and base_url_changed(workflow, base_url=base_url)


def check_key_for_base_url(workflow: Workflow, *, base_url: str | None, api_key: str | None) -> None:
    """ValidationError on `api_key` when `key_required`; for services that take fields (add_workflow)."""
    if key_required(workflow, base_url=base_url, api_key=api_key):
        raise ValidationError({"api_key": KEY_REQUIRED}, code="key_required")


@transaction.atomic
def save_workflow(
    workflow: Workflow | str, *, actor: audit.Actor | None = None, changed: Iterable[str] = (), **fields: Any
) -> tuple[Workflow, bool]:
    """Create or change a workflow, with its entry in the audit log (ValidationError if invalid); True if created.

    `workflow`: a name (the workflow of that name, else a new one), or a workflow a form has edited, with the names
    of the fields it `changed`. `fields`: values to set, None keeping the current one; a new base URL among them
    needs the API key again (`check_key_for_base_url`; a form applies the rule itself: only it knows whether a key
    was entered).
    """
    if isinstance(workflow, str):
        workflow = Workflow.objects.filter(name=workflow).first() or Workflow(name=workflow)
    created = workflow.pk is None
    check_key_for_base_url(workflow, base_url=fields.get("base_url"), api_key=fields.get("api_key"))
    given = [key for key, value in fields.items() if value is not None and getattr(workflow, key) != value]
    for key in given:
        setattr(workflow, key, fields[key])
    workflow.full_clean()
    workflow.save()
    audit.workflow_changed(workflow.pk, [*changed, *given], actor=actor, created=created)
    return workflow, created


def read_input_variables(workflow: Workflow, *, config: dict[str, Any] | None = None) -> list[InputVariable] | None:
    """Ask the app for its input variables (GET /parameters) with the workflow's settings, or the settings a batch
    started with (`config`); None if it did not answer (DifyMoved: see `app_settings`). A network call: never
    inside a transaction."""
    return pages.fetch_parameters(app_settings(workflow, config=config))


def refresh_input_variables(workflow_id: int) -> list[InputVariable] | None:
    """Read the app's input variables (GET /parameters) and keep them on the workflow; None if it did not answer.

    Call it outside any transaction (a network call). The write is skipped if the base URL changed meanwhile.
    """
    workflow = Workflow.objects.get(pk=workflow_id)
    variables = read_input_variables(workflow)
    if variables is not None:
        stored = [dataclasses.asdict(variable) for variable in variables]
        Workflow.objects.filter(pk=workflow.pk, base_url=workflow.base_url).update(
            input_variables=stored, input_variables_at=timezone.now()
        )
    logger.info("input variables of workflow %s: %s", workflow.pk, "read" if variables is not None else "no answer")
    return variables


def cached_input_variables(workflow: Workflow) -> list[InputVariable] | None:
    """The input variables last read from the app (None: never read)."""
    if workflow.input_variables is None:
        return None
    return [_variable(item) for item in workflow.input_variables if isinstance(item, dict)]


def _variable(item: dict[str, Any]) -> InputVariable:
    fields = {f.name for f in dataclasses.fields(InputVariable)}
    values = {key: value for key, value in item.items() if key in fields}
    for name in ("options", "allowed_file_types", "allowed_file_extensions", "allowed_file_upload_methods"):
        values[name] = tuple(values.get(name) or ())  # stored as JSON lists
    return InputVariable(**values)


def check_connection(workflow: Workflow) -> ConnectionReport:
    """ "Test connection": GET /parameters and /info with the stored key, and what went wrong in one line."""
    key = workflow.api_key if isinstance(workflow.api_key, str) else ""
    if not key or is_unreadable(key):
        return ConnectionReport(False, "auth: the stored API key cannot be read; enter it again")
    report = pages.check_connection(app_settings(workflow))
    if not report.ok:
        logger.info("test connection of workflow %s failed: %s", workflow.pk, report.error)
    return report
