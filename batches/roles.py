"""The permissions the pages and the admin check (one constant each), and the staff roles `manage.py setup_roles`
creates: groups holding them.

Reading the staff pages needs staff status (`is_staff`), which a group cannot give: a person gets staff status and
one or more of these groups (see README "Production").
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db import transaction

# As `user.has_perm` takes them ("app.codename"); templates spell them `perms.batches.codename`.
VIEW_BATCH = "batches.view_batchtask"
ADD_BATCH = "batches.add_batchtask"
CHANGE_BATCH = "batches.change_batchtask"
# The batch controls (services.controls), its concurrency, starting a new batch at once, "Check Dify now".
CONTROL_BATCH = "batches.control_batchtask"
VIEW_EXECUTION = "batches.view_execution"
RETRY_EXECUTION = "batches.retry_execution"
VIEW_ATTEMPT = "batches.view_attempt"
VIEW_WORKFLOW = "batches.view_workflow"
ADD_WORKFLOW = "batches.add_workflow"
CHANGE_WORKFLOW = "batches.change_workflow"
DELETE_WORKFLOW = "batches.delete_workflow"

VIEW = [VIEW_BATCH, VIEW_EXECUTION, VIEW_ATTEMPT, VIEW_WORKFLOW]
ROLES: dict[str, list[str]] = {
    # The staff pages and the admin, read only.
    "Batch viewers": VIEW,
    # Create batches, control them (start, pause, resume, cancel, concurrency) and retry their rows.
    "Batch operators": [*VIEW, ADD_BATCH, CHANGE_BATCH, CONTROL_BATCH, RETRY_EXECUTION],
    # The Dify apps and their API keys (write-only in the admin).
    "Workflow admins": [VIEW_WORKFLOW, ADD_WORKFLOW, CHANGE_WORKFLOW, DELETE_WORKFLOW],
}


class MissingPermissions(Exception):
    """The permissions are created by `migrate`; without them the roles would be silently incomplete."""


@dataclass(frozen=True)
class RoleReport:
    name: str
    permissions: int
    created: bool


@transaction.atomic
def ensure_roles() -> list[RoleReport]:
    """Create the groups or reset them to exactly their permissions; running it again changes nothing."""
    return [_ensure(name, perms) for name, perms in ROLES.items()]


def _ensure(name: str, perms: list[str]) -> RoleReport:
    wanted = _permissions(perms)
    group, created = Group.objects.get_or_create(name=name)
    group.permissions.set(wanted)
    return RoleReport(name, len(wanted), created)


def _permissions(perms: list[str]) -> list[Permission]:
    codenames = {perm.removeprefix("batches.") for perm in perms}  # every role permission is the app's own
    found = list(Permission.objects.filter(content_type__app_label="batches", codename__in=codenames))
    missing = sorted(codenames - {perm.codename for perm in found})
    if missing:
        raise MissingPermissions(f"permissions not found (run manage.py migrate first): {', '.join(missing)}")
    return found
