"""`manage.py setup_roles`: three groups, idempotent, each giving what the pages and the admin check."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from batches.choices import BatchStatus
from batches.roles import ROLES


def setup_roles() -> str:
    out = StringIO()
    call_command("setup_roles", stdout=out)
    return out.getvalue()


def member_of(client, django_user_model, group: str):
    user = django_user_model.objects.create_user(f"u-{group}", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def test_setup_roles_creates_the_three_groups_with_their_permissions(db):
    out = setup_roles()

    assert "Batch viewers: 4 permissions (created)" in out
    for name, perms in ROLES.items():
        granted = {
            f"batches.{codename}"
            for codename in Group.objects.get(name=name).permissions.values_list("codename", flat=True)
        }
        assert granted == set(perms)


def test_setup_roles_twice_changes_nothing_and_resets_a_drifted_group(db):
    setup_roles()
    viewers = Group.objects.get(name="Batch viewers")
    viewers.permissions.add(Permission.objects.get(codename="delete_workflow"))

    out = setup_roles()

    assert Group.objects.filter(name__in=ROLES).count() == 3
    assert "(created)" not in out
    assert not viewers.permissions.filter(codename="delete_workflow").exists()


@pytest.mark.parametrize(
    ("group", "pause", "workflow_admin", "new_batch"),
    [
        ("Batch viewers", 403, 403, 403),
        ("Batch operators", 302, 403, 200),
        ("Workflow admins", 403, 200, 403),
    ],
)
def test_each_role_can_do_what_its_name_says(
    client, django_user_model, make_batch, group, pause, workflow_admin, new_batch
):
    setup_roles()
    batch = make_batch(status=BatchStatus.RUNNING)
    member_of(client, django_user_model, group)

    assert client.get("/").status_code == 200
    assert client.get(f"/batches/{batch.pk}/").status_code == 200
    assert client.post(f"/batches/{batch.pk}/pause/").status_code == pause
    assert client.get("/admin/batches/workflow/add/").status_code == workflow_admin
    assert client.get("/batches/new/").status_code == new_batch
