"""The audit log: who did what, when, to how many rows and why, written by the service that did it.

Services take `actor` (keyword-only) from their adapter: `of_request` for pages and the admin, `of_os_user` for
the command line, `SYSTEM` (the default) for the app's own transitions (a pause by the circuit or the failure
rule, a batch finished or reopened by the sweep). An entry is written in the same transaction as the change, so a
refused change leaves none. The API key is never written here: a key change is recorded as that, nothing more.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from batches.models import AuditEntry, BatchTask

Action = AuditEntry.Action
Face = AuditEntry.Face
MAX_IDS = 1000  # row ids kept per entry (a retry of 100,000 rows keeps its count, and the first ids)


@dataclass(frozen=True)
class Actor:
    name: str
    face: str
    user_id: int | None = None


SYSTEM = Actor("system", Face.SYSTEM)


def of_request(request: HttpRequest, *, face: str = Face.PAGE) -> Actor:
    user = request.user
    return Actor(user.get_username(), face, user.pk if user.is_authenticated else None)


def of_admin(request: HttpRequest) -> Actor:
    return of_request(request, face=Face.ADMIN)


def of_os_user() -> Actor:
    """The command line's actor: the operating-system user who ran the command."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        name = f"uid {os.getuid()}"
    return Actor(f"os:{name}", Face.CLI)


def record(
    actor: Actor | None,
    action: str,
    *,
    batch_id: int | None = None,
    workflow_id: int | None = None,
    rows: int | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    actor = actor or SYSTEM
    if batch_id is not None and workflow_id is None:
        workflow_id = BatchTask.objects.filter(pk=batch_id).values_list("workflow_id", flat=True).first()
    AuditEntry.objects.create(
        actor=actor.name[:150],
        user_id=actor.user_id,
        face=actor.face,
        action=action,
        batch_id=batch_id,
        workflow_id=workflow_id,
        rows=rows,
        reason=reason[:500],
        detail=detail or {},
    )


def record_system(batch_ids: Iterable[int], action: str, *, reason: str = "") -> None:
    """The app's own transition of several batches at once (one entry each, one INSERT)."""
    found = BatchTask.objects.filter(pk__in=list(batch_ids)).values_list("pk", "workflow_id")
    AuditEntry.objects.bulk_create(
        AuditEntry(actor=SYSTEM.name, face=SYSTEM.face, action=action, batch_id=pk, workflow_id=wf, reason=reason[:500])
        for pk, wf in found
    )


def record_retry(picked: list[tuple[int, int, int]], actor: Actor | None, *, edited: bool) -> None:
    """A retry's entries: one per batch, naming its rows ((batch id, workflow id, row id) triples)."""
    by_batch: dict[tuple[int, int], list[int]] = {}
    for batch_id, workflow_id, row_id in picked:
        by_batch.setdefault((batch_id, workflow_id), []).append(row_id)
    action = Action.EDIT_INPUTS if edited else Action.RETRY
    for (batch_id, workflow_id), row_ids in sorted(by_batch.items()):
        record(actor, action, batch_id=batch_id, workflow_id=workflow_id, rows=len(row_ids), detail=ids(row_ids))


def workflow_changed(workflow_id: int, changed: Iterable[str], *, actor: Actor | None, created: bool = False) -> None:
    """A workflow saved from any face: the names of the fields changed, never their values (the key least)."""
    names = sorted(set(changed))
    if names or created:
        action = Action.WORKFLOW_KEY if "api_key" in names else Action.WORKFLOW
        record(actor, action, workflow_id=workflow_id, detail={"changed": names, "created": created})


def ids(values: Iterable[int]) -> dict[str, Any]:
    """The detail of an action on rows: their ids (the first MAX_IDS)."""
    listed = sorted(values)
    return {"executions": listed[:MAX_IDS], **({"more": len(listed) - MAX_IDS} if len(listed) > MAX_IDS else {})}
