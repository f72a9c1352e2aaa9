"""The staff roles `manage.py setup_roles` creates: groups holding the permissions the pages and the admin check.

Reading the staff pages needs staff status (`is_staff`), which a group cannot give: a person gets staff status and
one or more of these groups (see README "Production").
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db import transaction

VIEW = ["batches.view_batchtask", "batches.view_execution", "batches.view_attempt", "batches.view_workflow"]
ROLES: dict[str, list[str]] = {
    # The staff pages and the admin, read only.
    "Batch viewers": VIEW,
    # Create (views.ADD_PERMISSION), start / pause / resume / cancel / concurrency (CONTROL_PERMISSION), retry.
    "Batch operators": [
        *VIEW,
        "batches.add_batchtask",
        "batches.change_batchtask",
        "batches.control_batchtask",
        "batches.retry_execution",
    ],
    # The Dify apps and their API keys (write-only in the admin).
    "Workflow admins": [
        "batches.view_workflow",
        "batches.add_workflow",
        "batches.change_workflow",
        "batches.delete_workflow",
    ],
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
