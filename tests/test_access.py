"""Every URL × {anonymous, non-staff, staff without permission, permitted staff} × {GET, POST}, against a table.

A URL that is missing from the table fails the test, so a new page cannot ship without its access rules.
"""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from batches.models import BatchTask, Execution, ExecutionStatus

ROLES = ("anonymous", "non-staff", "staff", "permitted")
LOGIN, OK, FORBIDDEN, NOT_ALLOWED, BAD, AWAY = 302, 200, 403, 405, 400, 302
# name: (GET as anonymous, non-staff, staff, permitted), (POST as the same four)
EXPECTED = {
    "batch_list": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_new": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_upload": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "batch_preview": ((LOGIN, LOGIN, FORBIDDEN, AWAY), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_import": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "batch_detail": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_progress_json": ((FORBIDDEN, FORBIDDEN, OK, OK), (FORBIDDEN, FORBIDDEN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_failures": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_failures_json": ((FORBIDDEN, FORBIDDEN, OK, OK), (FORBIDDEN, FORBIDDEN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_retry": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "batch_retry_json": ((FORBIDDEN, FORBIDDEN, NOT_ALLOWED, NOT_ALLOWED), (FORBIDDEN, FORBIDDEN, FORBIDDEN, BAD)),
    "batch_concurrency": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "batch_export": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_probe": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "batch_action": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "execution_detail": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "execution_retry": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "workflow_template": ((LOGIN, LOGIN, AWAY, AWAY), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_results": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_results_json": ((FORBIDDEN, FORBIDDEN, OK, OK), (FORBIDDEN, FORBIDDEN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_rerun": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "batch_compare": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_compare_export": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "workflow_list": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "workflow_add": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "workflow_edit": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "workflow_test": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, OK)),
    "healthz": ((OK, OK, OK, OK), (NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED)),
}
# Project URLs outside the batches namespace (public by design).
PROJECT_URLS = {"healthz"}
# Django's own URL set: the admin checks staff status itself (its login page is the site's login page).
DELEGATED = {"admin"}
PERMISSIONS = ("control_batchtask", "retry_execution", "add_batchtask", "view_workflow", "add_workflow")
PERMISSIONS += ("change_workflow",)


def app_patterns():
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "batches":
            yield from entry.url_patterns
        elif isinstance(entry, URLResolver) and str(entry.pattern).strip("/") in DELEGATED:
            continue
        else:
            yield entry


def url_for(pattern: URLPattern, batch, execution) -> str:
    values = {"action": "pause", "fmt": "csv", "a": batch.pk, "b": batch.pk}
    if "pk" in pattern.pattern.converters:
        values["pk"] = {"execution": execution.pk, "workflow": batch.workflow_id}.get(
            pattern.name.split("_")[0], batch.pk
        )
    namespace = "" if pattern.name in PROJECT_URLS else "batches:"
    return reverse(f"{namespace}{pattern.name}", kwargs={k: values[k] for k in pattern.pattern.converters})


@pytest.fixture
def users(db):
    permitted = User.objects.create_user("permitted", is_staff=True)
    permitted.user_permissions.set(Permission.objects.filter(codename__in=PERMISSIONS))
    return {
        "anonymous": None,
        "non-staff": User.objects.create_user("plain"),
        "staff": User.objects.create_user("staff", is_staff=True),
        "permitted": permitted,
    }


def client_for(user, **options):
    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


def test_every_url_is_in_the_access_table():
    names = {pattern.name for pattern in app_patterns()}

    assert names == set(EXPECTED), f"missing from the table: {names - set(EXPECTED)}; stale: {set(EXPECTED) - names}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_access_matrix(name, users, make_batch):
    batch = make_batch(rows=1, status="finished")
    execution = Execution.objects.get(batch=batch)
    Execution.objects.update(status=ExecutionStatus.FAILED)
    pattern = next(p for p in app_patterns() if p.name == name)
    url = url_for(pattern, batch, execution)

    seen = tuple(
        tuple(getattr(client_for(users[role]), method)(url).status_code for role in ROLES) for method in ("get", "post")
    )

    assert seen == EXPECTED[name]
    assert BatchTask.objects.get(pk=batch.pk).status in {"finished", "paused", "running"}


@pytest.mark.parametrize("name", sorted(n for n, (_, post) in EXPECTED.items() if post[3] != NOT_ALLOWED))
def test_every_post_needs_a_csrf_token(name, users, make_batch):
    batch = make_batch(rows=1, status="running")
    pattern = next(p for p in app_patterns() if p.name == name)
    client = client_for(users["permitted"], enforce_csrf_checks=True)

    response = client.post(url_for(pattern, batch, Execution.objects.get(batch=batch)))

    assert response.status_code == FORBIDDEN
    assert BatchTask.objects.get(pk=batch.pk).status == "running"
