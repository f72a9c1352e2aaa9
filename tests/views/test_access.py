"""The one access matrix: every URL × {anonymous, non-staff, staff without permission, permitted staff} ×
{GET, POST}, against a table; plus the one permission each URL needs, CSRF on every POST, and nothing changed by
anyone refused.

A URL that is missing from the table fails the test, so a new page cannot ship without its access rules.
"""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from batches.choices import ExecutionStatus
from batches.models import BatchTask, Execution

ROLES = ("anonymous", "non-staff", "staff", "permitted")
LOGIN, OK, FORBIDDEN, NOT_ALLOWED, BAD, AWAY, NOT_FOUND = 302, 200, 403, 405, 400, 302, 404
# name: (GET as anonymous, non-staff, staff, permitted), (POST as the same four)
EXPECTED = {
    "batch_list": ((LOGIN, LOGIN, OK, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_new": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_upload": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "batch_preview": ((LOGIN, LOGIN, FORBIDDEN, AWAY), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "batch_import": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "batch_map": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
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
    "batch_compare_chosen": ((LOGIN, LOGIN, AWAY, AWAY), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),  # to the list
    "workflow_list": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED)),
    "workflow_add": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "workflow_edit": ((LOGIN, LOGIN, FORBIDDEN, OK), (LOGIN, LOGIN, FORBIDDEN, BAD)),
    "workflow_test": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, OK)),
    "workflow_notify_test": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, AWAY)),
    "workflow_webhook_secret": ((LOGIN, LOGIN, NOT_ALLOWED, NOT_ALLOWED), (LOGIN, LOGIN, FORBIDDEN, OK)),
    "metrics": ((NOT_FOUND,) * 4, (NOT_ALLOWED,) * 4),  # off: BATCHES_METRICS_TOKEN is not set (test_metrics.py)
    "healthz": ((OK, OK, OK, OK), (NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED)),
    "favicon": ((AWAY, AWAY, AWAY, AWAY), (NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED)),
}
# The one permission (on top of being staff) that turns the "staff" column into the "permitted" one.
NEEDS = {
    "batch_new": "add_batchtask",
    "batch_upload": "add_batchtask",
    "batch_preview": "add_batchtask",
    "batch_map": "add_batchtask",
    "batch_import": "add_batchtask",
    "batch_rerun": "add_batchtask",
    "batch_retry": "retry_execution",
    "batch_retry_json": "retry_execution",
    "execution_retry": "retry_execution",
    "batch_concurrency": "control_batchtask",
    "batch_probe": "control_batchtask",
    "batch_action": "control_batchtask",  # pause; "retry-failed" needs retry_execution (tests/views/test_batches.py)
    "workflow_list": "view_workflow",
    "workflow_add": "add_workflow",
    "workflow_edit": "change_workflow",
    "workflow_test": "change_workflow",
    "workflow_notify_test": "change_workflow",
    "workflow_webhook_secret": "change_workflow",
}
PROJECT_URLS = {"healthz", "favicon", "metrics"}
# Django's own URL set: the admin checks staff status itself (its login page is the site's login page).
DELEGATED = {"admin"}
PERMISSIONS = set(NEEDS.values())


def app_patterns():
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "batches":
            yield from entry.url_patterns
        elif isinstance(entry, URLResolver) and str(entry.pattern).strip("/") in DELEGATED:
            continue
        else:
            yield entry


def url_for(name: str, batch, execution) -> str:
    pattern: URLPattern = next(p for p in app_patterns() if p.name == name)
    values = {"action": "pause", "fmt": "csv", "a": batch.pk, "b": batch.pk}
    if "pk" in pattern.pattern.converters:
        values["pk"] = {"execution": execution.pk, "workflow": batch.workflow_id}.get(name.split("_")[0], batch.pk)
    namespace = "" if name in PROJECT_URLS else "batches:"
    return reverse(f"{namespace}{name}", kwargs={k: values[k] for k in pattern.pattern.converters})


def user_with(username: str, codenames, *, staff: bool = True) -> User:
    user = User.objects.create_user(username, is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="batches", codename__in=codenames))
    return user


@pytest.fixture
def users(db):
    return {
        "anonymous": None,
        "non-staff": user_with("plain", PERMISSIONS, staff=False),  # permissions do not replace being staff
        "staff": user_with("staff", ()),
        "permitted": user_with("permitted", PERMISSIONS),
    }


@pytest.fixture
def finished(make_batch):
    """A finished batch of one failed row: every button has something it could change."""
    batch = make_batch(rows=1, status="finished")
    Execution.objects.update(status=ExecutionStatus.FAILED)
    return batch, Execution.objects.get(batch=batch)


def client_for(user, **options):
    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


def state(batch, execution):
    batch.refresh_from_db()
    execution.refresh_from_db()
    return (batch.status, batch.concurrency, execution.status, execution.inputs, BatchTask.objects.count())


def test_every_url_is_in_the_access_table():
    names = {pattern.name for pattern in app_patterns()}

    assert names == set(EXPECTED), f"missing from the table: {names - set(EXPECTED)}; stale: {set(EXPECTED) - names}"
    assert set(NEEDS) <= names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_access_matrix(name, users, finished):
    url = url_for(name, *finished)
    before = state(*finished)
    seen = {}

    for method in ("get", "post"):
        for role in ROLES:
            if (method, role) == ("post", "permitted"):
                assert state(*finished) == before, "changed by someone refused"
            seen[method, role] = getattr(client_for(users[role]), method)(url)

    assert tuple(tuple(seen[m, r].status_code for r in ROLES) for m in ("get", "post")) == EXPECTED[name]
    for response in seen.values():
        if response.status_code == LOGIN and response.get("Location", "").startswith("/admin/login/"):
            assert response["Location"].startswith("/admin/login/?next=")
        if response.status_code == FORBIDDEN and name.endswith("_json"):
            assert response["Content-Type"] == "application/json" and "error" in response.json()
    assert BatchTask.objects.get(pk=finished[0].pk).status in {"finished", "paused", "running"}


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_the_one_permission_needed_is_enough(name, finished):
    client = client_for(user_with("one", [NEEDS[name]]))
    url = url_for(name, *finished)

    seen = (client.get(url).status_code, client.post(url).status_code)

    assert seen == (EXPECTED[name][0][3], EXPECTED[name][1][3])


@pytest.mark.parametrize("name", sorted(n for n, (_, post) in EXPECTED.items() if post[3] != NOT_ALLOWED))
def test_every_post_needs_a_csrf_token(name, users, make_batch):
    batch = make_batch(rows=1, status="running")
    execution = Execution.objects.get(batch=batch)
    client = client_for(users["permitted"], enforce_csrf_checks=True)
    before = state(batch, execution)

    response = client.post(url_for(name, batch, execution))

    assert response.status_code == FORBIDDEN
    assert state(batch, execution) == before
