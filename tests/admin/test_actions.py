"""The admin's batch actions (batches.admin.actions): state changes through the services, counts, permissions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.choices import ErrorType, Trigger
from batches.models import Attempt, BatchTask, Execution
from tests.admin.helpers import (
    BATCH_CHANGELIST,
    E,
    S,
    attempt_for,
    change_page,
    messages_of,
    offered_actions,
    run_action,
)

# --- batch actions ---------------------------------------------------------------------------------------------

BATCH_ACTIONS = [
    # (action, states of the selected batches before, states after, message level, message)
    ("start", [S.PENDING, S.PENDING], [S.RUNNING, S.RUNNING], "success", "Started 2 batches"),
    ("start", [S.PENDING, S.RUNNING], [S.RUNNING, S.RUNNING], "warning", "Started 1 batch; 1 was not pending"),
    ("pause", [S.RUNNING, S.PENDING], [S.PAUSED, S.PENDING], "warning", "Paused 1 batch; 1 was not running"),
    ("pause", [S.RUNNING, S.RUNNING], [S.PAUSED, S.PAUSED], "success", "Paused 2 batches"),
    ("resume", [S.PAUSED, S.FINISHED, S.CANCELLED], [S.RUNNING, S.FINISHED, S.CANCELLED], "warning",
     "Resumed 1 batch; 2 were not paused"),
    ("cancel", [S.RUNNING, S.PAUSED], [S.CANCELLED, S.CANCELLED], "success", "Cancelled 2 batches (6 executions)"),
    ("cancel", [S.FINISHED, S.PENDING], [S.FINISHED, S.CANCELLED], "warning",
     "Cancelled 1 batch (3 executions); 1 was already finished or cancelled"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "before", "after", "level", "text"), BATCH_ACTIONS)
def test_batch_actions_change_state_through_the_services_and_report_counts(
    admin_client, make_batch, make_workflow, action, before, after, level, text
):
    workflow = make_workflow()
    batches = [make_batch(rows=3, workflow=workflow, status=status) for status in before]

    response = run_action(admin_client, BATCH_CHANGELIST, action, batches)

    assert [BatchTask.objects.get(pk=batch.pk).status for batch in batches] == after
    assert messages_of(response) == [(level, text)]


def test_repoint_action_points_moved_batches_at_their_workflows_dify(admin_client, make_batch, make_workflow):
    workflow = make_workflow()
    moved, same = make_batch(workflow=workflow, status=S.PAUSED), make_batch(workflow=workflow, status=S.PAUSED)
    BatchTask.objects.filter(pk=moved.pk).update(config={**moved.config, "base_url": "http://127.0.0.1:9/old/v1"})

    response = run_action(admin_client, BATCH_CHANGELIST, "repoint", [moved, same])

    moved.refresh_from_db()
    assert (moved.config["base_url"], moved.config["moved_from"]) == (workflow.base_url, ["http://127.0.0.1:9/old/v1"])
    assert messages_of(response) == [("warning", "Pointed 1 batch at its workflow's Dify; 1 had not moved")]


def test_cancel_action_cancels_the_unfinished_rows(admin_client, make_batch):
    batch = make_batch(rows=3, status=S.RUNNING)
    Execution.objects.filter(index=0).update(status=E.SUCCEEDED)

    run_action(admin_client, BATCH_CHANGELIST, "cancel", [batch])

    assert sorted(batch.executions.values_list("status", flat=True)) == [E.CANCELLED, E.CANCELLED, E.SUCCEEDED]


def test_retry_failed_action_retries_failed_rows_and_counts_batches_without_any(
    admin_client, make_batch, make_workflow
):
    workflow = make_workflow()
    with_failures = make_batch(rows=3, workflow=workflow, status=S.FINISHED)
    without = make_batch(rows=3, workflow=workflow, status=S.FINISHED)
    Execution.objects.filter(batch=with_failures, index__lt=2).update(status=E.FAILED, error_type=ErrorType.TIMEOUT)

    response = run_action(admin_client, BATCH_CHANGELIST, "retry_failed", [with_failures, without])

    with_failures.refresh_from_db()
    assert with_failures.status == S.RUNNING
    assert with_failures.executions.filter(status=E.PENDING, next_trigger=Trigger.MANUAL).count() == 2
    assert messages_of(response) == [("warning", "Retrying 2 failed executions; 1 batch had none")]


@pytest.mark.parametrize(
    ("perms", "offered"),
    [
        ([], set()),
        (["batches.control_batchtask"], {"start", "pause", "resume", "cancel", "repoint"}),
        (["batches.retry_execution"], {"retry_failed"}),
        (
            ["batches.control_batchtask", "batches.retry_execution"],
            {"start", "pause", "resume", "cancel", "repoint", "retry_failed"},
        ),
    ],
)
def test_batch_actions_are_offered_only_with_their_permission(login, make_batch, perms, offered):
    client = login("batches.view_batchtask", *perms)
    make_batch()

    response = client.get(BATCH_CHANGELIST)

    assert offered_actions(response) == offered


@pytest.mark.parametrize("action", ["start", "pause", "cancel", "retry_failed"])
def test_batch_actions_posted_without_permission_change_nothing(login, make_batch, action):
    client = login("batches.view_batchtask")
    batch = make_batch(status=S.RUNNING)
    Execution.objects.filter(index=0).update(status=E.FAILED)

    run_action(client, BATCH_CHANGELIST, action, [batch])

    batch.refresh_from_db()
    assert batch.status == S.RUNNING
    assert batch.executions.failed().count() == 1


def test_batch_change_form_edits_only_settings(admin_client, make_batch):
    batch = make_batch(status=S.RUNNING, name="old")
    data = {
        "name": "new",
        "concurrency": "3",
        "max_retries": "1",
        "failure_threshold_min_rows": "20",
        "status": "cancelled",
        "total": "99",
    }

    response = admin_client.post(change_page(batch), data)

    batch.refresh_from_db()
    assert response.status_code == 302
    assert (batch.name, batch.concurrency, batch.max_retries, batch.status, batch.total) == ("new", 3, 1, S.RUNNING, 3)


def test_batch_delete_confirmation_summarises_instead_of_listing_rows(admin_client, make_batch):
    batch = make_batch(rows=300, status=S.FINISHED)
    attempt_for(batch.executions.first())

    response = admin_client.get(reverse("admin:batches_batchtask_delete", args=[batch.pk]))

    assert response.status_code == 200
    assert dict(response.context["model_count"]) == {"batches": 1, "executions": 300, "attempts": 1}
    assert response.context["deleted_objects"] == [str(batch)]
    assert f"#{batch.pk} row 1".encode() not in response.content


def test_batch_can_be_deleted_with_its_executions(admin_client, make_batch):
    batch = make_batch(rows=3, status=S.FINISHED)
    attempt_for(batch.executions.first())

    admin_client.post(reverse("admin:batches_batchtask_delete", args=[batch.pk]), {"post": "yes"})

    assert not BatchTask.objects.exists()
    assert not Execution.objects.exists()
    assert not Attempt.objects.exists()


@pytest.mark.parametrize("batches", [1, 30])
def test_batch_changelist_query_count_does_not_grow_with_batches(
    admin_client, make_batch, make_workflow, django_assert_max_num_queries, batches
):
    workflows = [make_workflow(), make_workflow()]
    for number in range(batches):
        make_batch(rows=2, workflow=workflows[number % 2])

    with django_assert_max_num_queries(9):
        response = admin_client.get(BATCH_CHANGELIST)

    assert len(response.context["cl"].result_list) == batches


def test_batch_changelist_shows_progress_counts(admin_client, make_batch):
    batch = make_batch(rows=4, status=S.RUNNING)
    Execution.objects.filter(index__lt=2).update(status=E.FAILED)
    Execution.objects.filter(index=2).update(status=E.SUCCEEDED)

    html = admin_client.get(BATCH_CHANGELIST).content.decode()

    assert '<progress value="3" max="4">' in html
    assert "2 failed" in html
    assert str(batch.name) in html
