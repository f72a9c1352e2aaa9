"""Admin: access rules, the write-only API key, executions and attempts, edit and retry, pages that stay cheap."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from batches.choices import BatchStatus, ErrorType, ExecutionStatus, Trigger
from batches.models import Attempt, BatchTask, Execution, Workflow, WorkflowThrottle
from tests.admin.helpers import (
    BATCH_CHANGELIST,
    EXECUTION_CHANGELIST,
    MODELS,
    SECRET,
    VIEW_ALL,
    E,
    S,
    attempt_for,
    change_page,
    changelist,
    messages_of,
    offered_actions,
    run_action,
)

# --- access ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_anonymous_users_are_sent_to_the_admin_login(client, db, model):
    response = client.get(changelist(model))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("model", MODELS)
def test_users_who_are_not_staff_are_sent_to_the_admin_login(login, model):
    client = login(*VIEW_ALL, staff=False)

    response = client.get(changelist(model))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("model", MODELS)
def test_staff_without_permissions_are_forbidden(login, model):
    client = login()

    response = client.get(changelist(model))

    assert response.status_code == 403


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_and_change_page_loads(admin_client, make_batch, model):
    batch = make_batch(status=S.RUNNING)
    execution = batch.executions.first()
    objects = {
        "workflow": batch.workflow,
        "batchtask": batch,
        "execution": execution,
        "attempt": attempt_for(execution),
    }

    listing = admin_client.get(changelist(model))
    change = admin_client.get(change_page(objects[model]))

    assert (listing.status_code, change.status_code) == (200, 200)


@pytest.mark.parametrize(
    ("model", "status"), [("workflow", 200), ("batchtask", 403), ("execution", 403), ("attempt", 403)]
)
def test_only_workflows_can_be_added_in_the_admin(admin_client, model, status):
    response = admin_client.get(reverse(f"admin:batches_{model}_add"))

    assert response.status_code == status


def test_execution_and_attempt_pages_are_read_only(admin_client, make_batch):
    execution = make_batch(rows=1).executions.get()
    attempt_for(execution)

    response = admin_client.get(change_page(execution))

    assert response.context["has_change_permission"] is False
    assert response.context["has_delete_permission"] is False
    assert 'name="inputs"' not in response.content.decode()


# --- the write-only API key ------------------------------------------------------------------------------------


def workflow_data(**fields: Any) -> dict[str, Any]:
    data = {
        "name": "summarise",
        "mode": "workflow",
        "base_url": "https://dify.example/v1",
        "api_key": "",
        "response_mode": "streaming",
        "timeout": "300",
        "rpm_limit": "",
        "concurrency": "10",
        "retry_workflow_failed": "on",
    }
    return {**data, **fields}


def test_workflow_key_is_required_on_create(admin_client, db):
    response = admin_client.post(reverse("admin:batches_workflow_add"), workflow_data())

    assert response.status_code == 200
    assert "api_key" in response.context["adminform"].form.errors
    assert not Workflow.objects.exists()


def test_workflow_is_created_with_its_key(admin_client, db):
    response = admin_client.post(reverse("admin:batches_workflow_add"), workflow_data(api_key=SECRET))

    assert response.status_code == 302
    assert Workflow.objects.get().api_key == SECRET


def test_workflow_change_with_a_blank_key_keeps_the_stored_key(admin_client, make_workflow):
    workflow = make_workflow(name="summarise", api_key=SECRET, base_url="https://dify.example/v1")

    response = admin_client.post(change_page(workflow), workflow_data(concurrency="4"))

    workflow.refresh_from_db()
    assert response.status_code == 302
    assert (workflow.api_key, workflow.concurrency) == (SECRET, 4)


def test_workflow_change_with_a_new_key_replaces_it(admin_client, make_workflow):
    workflow = make_workflow(name="summarise", api_key=SECRET)

    admin_client.post(change_page(workflow), workflow_data(api_key="app-new-key"))

    workflow.refresh_from_db()
    assert workflow.api_key == "app-new-key"


def test_the_key_never_appears_in_workflow_pages(admin_client, make_workflow):
    workflow = make_workflow(name="summarise", api_key=SECRET)
    admin_client.post(change_page(workflow), workflow_data(api_key=SECRET))  # logs a change in the history
    urls = [
        changelist("workflow"),
        change_page(workflow),
        reverse("admin:batches_workflow_add"),
        reverse("admin:batches_workflow_history", args=[workflow.pk]),
        reverse("admin:batches_workflow_delete", args=[workflow.pk]),
    ]

    bodies = [admin_client.get(url).content for url in urls]

    assert all(SECRET.encode() not in body for body in bodies)
    assert workflow.api_key == SECRET


def test_a_rejected_form_does_not_echo_the_submitted_key(admin_client, db):
    response = admin_client.post(reverse("admin:batches_workflow_add"), workflow_data(api_key=SECRET, base_url="nope"))

    assert response.status_code == 200
    assert SECRET.encode() not in response.content


def test_the_key_never_appears_in_batch_execution_or_attempt_pages(admin_client, make_batch, make_workflow):
    batch = make_batch(workflow=make_workflow(api_key=SECRET))
    execution = batch.executions.first()
    attempt = attempt_for(execution)
    urls = [changelist(model) for model in MODELS[1:]] + [change_page(obj) for obj in (batch, execution, attempt)]

    bodies = [admin_client.get(url).content for url in urls]

    assert all(SECRET.encode() not in body for body in bodies)


# --- executions and attempts -----------------------------------------------------------------------------------


def test_retry_selected_retries_failed_and_cancelled_rows_and_reports_skipped(admin_client, make_batch):
    batch = make_batch(rows=3, status=S.CANCELLED)
    rows = list(batch.executions.order_by("index"))
    for row, status in zip(rows, [E.FAILED, E.CANCELLED, E.SUCCEEDED], strict=True):
        Execution.objects.filter(pk=row.pk).update(status=status)

    response = run_action(admin_client, EXECUTION_CHANGELIST, "retry_selected", rows)

    statuses = list(batch.executions.order_by("index").values_list("status", flat=True))
    assert statuses == [E.PENDING, E.PENDING, E.SUCCEEDED]
    assert messages_of(response) == [("warning", "Retrying 2 executions; 1 was not failed or cancelled")]
    batch.refresh_from_db()
    assert batch.status == S.RUNNING


@pytest.mark.parametrize(("perms", "offered"), [([], set()), (["batches.retry_execution"], {"retry_selected"})])
def test_retry_selected_is_offered_only_with_the_retry_permission(login, make_batch, perms, offered):
    client = login("batches.view_execution", *perms)
    make_batch()

    response = client.get(EXECUTION_CHANGELIST)

    assert offered_actions(response) == offered


def test_retry_selected_posted_without_permission_changes_nothing(login, make_batch):
    client = login("batches.view_execution")
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=E.FAILED)

    run_action(client, EXECUTION_CHANGELIST, "retry_selected", [execution])

    execution.refresh_from_db()
    assert execution.status == E.FAILED


@pytest.mark.parametrize(("term", "found"), [("needle-in-error", 1), ("needle-in-inputs", 1), ("absent", 0)])
def test_execution_search_looks_in_errors_and_inputs_within_a_batch(admin_client, make_batch, term, found):
    batch = make_batch(rows=3)
    Execution.objects.filter(batch=batch, index=0).update(error="a needle-in-error here")
    Execution.objects.filter(batch=batch, index=1).update(inputs={"text": "needle-in-inputs"})

    response = admin_client.get(EXECUTION_CHANGELIST, {"q": term, "batch__id__exact": batch.pk})

    assert len(response.context["cl"].result_list) == found


@pytest.mark.parametrize("query", [{}, {"status__exact": "failed"}, {"error_type__exact": "timeout"}])
def test_execution_changelist_filters_load(admin_client, make_batch, query):
    batch = make_batch(rows=2)
    Execution.objects.filter(batch=batch, index=0).update(status=E.FAILED, error_type=ErrorType.TIMEOUT)

    response = admin_client.get(EXECUTION_CHANGELIST, {**query, "batch__id__exact": batch.pk})

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == (2 if not query else 1)


@pytest.mark.parametrize("rows", [3, 150])
def test_execution_changelist_query_count_does_not_grow_with_rows(
    admin_client, make_batch, django_assert_max_num_queries, rows
):
    make_batch(rows=rows)

    with django_assert_max_num_queries(8):
        admin_client.get(EXECUTION_CHANGELIST)


@pytest.mark.parametrize("query", [{}, {"outcome__exact": "failed"}, {"trigger__exact": "manual"}])
def test_attempt_changelist_filters(admin_client, make_batch, query):
    execution = make_batch(rows=1).executions.get()
    attempt_for(execution, number=1, trigger=Trigger.AUTO, outcome=Attempt.Outcome.FAILED)
    attempt_for(execution, number=2, trigger=Trigger.MANUAL, outcome=Attempt.Outcome.SUCCEEDED)

    response = admin_client.get(changelist("attempt"), query)

    assert len(response.context["cl"].result_list) == (2 if not query else 1)


def test_markup_in_inputs_errors_and_names_is_escaped(admin_client, make_batch):
    batch = make_batch(rows=1, name="<b>bold</b>")
    execution = batch.executions.get()
    Execution.objects.filter(pk=execution.pk).update(
        status=E.FAILED, error="<script>alert(1)</script>", inputs={"text": "<img src=x onerror=alert(2)>"}
    )
    attempt_for(execution, error="<script>alert(3)</script>")

    pages = [BATCH_CHANGELIST, change_page(batch), EXECUTION_CHANGELIST, change_page(execution), changelist("attempt")]
    html = "".join(admin_client.get(url).content.decode() for url in pages)

    for markup in ("<b>bold</b>", "<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<script>alert(3)"):
        assert markup not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_admin_pages_load_for_a_batch_with_100k_rows(admin_client, make_batch, django_assert_max_num_queries):
    batch = make_batch(rows=100_000, status=S.RUNNING)
    execution = batch.executions.get(index=99_999)
    pages = [BATCH_CHANGELIST, change_page(batch), EXECUTION_CHANGELIST, change_page(execution)]
    pages += [
        f"{EXECUTION_CHANGELIST}?batch__id__exact={batch.pk}&p=500",
        f"{EXECUTION_CHANGELIST}?q=row+99999&batch__id__exact={batch.pk}",
    ]

    with django_assert_max_num_queries(12 * len(pages)):
        statuses = [admin_client.get(url).status_code for url in pages]

    assert statuses == [200] * len(pages)


# --- edit and retry ---------------------------------------------------------------------------------------------

RETRY_USER = ("batches.view_execution", "batches.retry_execution")


def execution_in(make_batch: Any, status: str) -> Execution:
    execution = make_batch(rows=1, status=S.FINISHED).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=status, error_type=ErrorType.INVALID_INPUT, error="bad")
    return execution


def change_form_data(inputs: str) -> dict[str, Any]:
    """The edited inputs plus the (read-only) attempts inline's management form."""
    management = {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0, "MIN_NUM_FORMS": 0, "MAX_NUM_FORMS": 1000}
    return {"inputs": inputs, "_save": "Save and retry", **{f"attempts-{k}": v for k, v in management.items()}}


@pytest.mark.parametrize("status", [E.FAILED, E.CANCELLED])
def test_a_retryable_rows_page_offers_only_its_inputs_and_save_and_retry(login, make_batch, status):
    client = login(*RETRY_USER)
    execution = execution_in(make_batch, status)

    response = client.get(change_page(execution))

    html = response.content.decode()
    assert list(response.context["adminform"].form.fields) == ["inputs"]
    assert 'value="Save and retry"' in html
    assert 'name="_continue"' not in html
    assert 'name="_addanother"' not in html
    assert "deletelink" not in html


@pytest.mark.parametrize(
    ("status", "perms"),
    [
        (E.SUCCEEDED, RETRY_USER),
        (E.PENDING, RETRY_USER),
        (E.RUNNING, RETRY_USER),
        (E.FAILED, ("batches.view_execution",)),
    ],
)
def test_other_rows_and_users_get_a_read_only_page_and_a_403_on_post(login, make_batch, status, perms):
    client = login(*perms)
    execution = execution_in(make_batch, status)

    page = client.get(change_page(execution))
    post = client.post(change_page(execution), change_form_data('{"text": "changed"}'))

    assert page.status_code == 200
    assert 'value="Save and retry"' not in page.content.decode()
    assert post.status_code == 403
    execution.refresh_from_db()
    assert (execution.status, execution.inputs) == (status, {"text": "row 0"})


@pytest.mark.parametrize("status", [E.FAILED, E.CANCELLED])
def test_save_and_retry_stores_the_inputs_and_queues_a_manual_retry(login, make_batch, status):
    client = login(*RETRY_USER)
    execution = execution_in(make_batch, status)

    response = client.post(change_page(execution), change_form_data('{"text": "fixed", "lang": "zh"}'), follow=True)

    execution.refresh_from_db()
    assert (execution.status, execution.inputs, execution.error) == (E.PENDING, {"text": "fixed", "lang": "zh"}, "")
    assert (execution.manual_retries, execution.next_trigger) == (1, Trigger.MANUAL)
    assert response.redirect_chain == [(change_page(execution), 302)]
    assert messages_of(response) == [("success", f"Retrying {execution} with the edited inputs.")]
    assert 'value="Save and retry"' not in response.content.decode()  # pending now: read-only again
    execution.batch.refresh_from_db()
    assert execution.batch.status == S.RUNNING


@pytest.mark.parametrize("inputs", ["[1, 2]", '"text"', "{broken", ""])
def test_save_and_retry_refuses_inputs_that_are_not_a_json_object(login, make_batch, inputs):
    client = login(*RETRY_USER)
    execution = execution_in(make_batch, E.FAILED)

    response = client.post(change_page(execution), change_form_data(inputs))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["inputs"]
    execution.refresh_from_db()
    assert (execution.status, execution.inputs) == (E.FAILED, {"text": "row 0"})


@pytest.mark.parametrize("depth", [500, 100_000])
def test_save_and_retry_refuses_deeply_nested_inputs_as_the_importer_does(login, make_batch, depth):
    client = login(*RETRY_USER)
    execution = execution_in(make_batch, E.FAILED)

    response = client.post(change_page(execution), change_form_data('{"text": ' + "[" * depth + "]" * depth + "}"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["inputs"] == ["JSON nested too deeply"]
    execution.refresh_from_db()
    assert (execution.status, execution.inputs) == (E.FAILED, {"text": "row 0"})


def test_editing_a_batch_in_the_admin_writes_only_its_settings(admin_client, make_batch):
    batch = make_batch(status=BatchStatus.RUNNING, concurrency=3)
    form = admin_client.get(f"/admin/batches/batchtask/{batch.pk}/change/").context["adminform"].form
    BatchTask.objects.filter(pk=batch.pk).update(status=BatchStatus.FINISHED)  # meanwhile, the batch finished
    data = {**form.initial, "concurrency": 7, "failure_threshold": 20, "failure_threshold_min_rows": 10}
    data = {key: value for key, value in data.items() if value is not None}

    response = admin_client.post(f"/admin/batches/batchtask/{batch.pk}/change/", data)

    assert response.status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.concurrency, batch.failure_threshold) == (BatchStatus.FINISHED, 7, 20)


@pytest.mark.parametrize(("perms", "concurrency"), [((), 3), (("batches.control_batchtask",), 9)])
def test_changing_a_batchs_concurrency_in_the_admin_needs_the_control_permission(login, make_batch, perms, concurrency):
    client = login("batches.view_batchtask", "batches.change_batchtask", *perms)
    batch = make_batch(status=BatchStatus.RUNNING, concurrency=3)
    url = f"/admin/batches/batchtask/{batch.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {**form.initial, "concurrency": 9, "failure_threshold": 20, "failure_threshold_min_rows": 10}

    response = client.post(url, {key: value for key, value in data.items() if value is not None})

    assert response.status_code == 302
    batch.refresh_from_db()
    assert (batch.concurrency, batch.failure_threshold) == (concurrency, 20)


def test_workflow_admin_shows_an_upstream_that_is_waited_for(admin_client, make_workflow):
    workflow = make_workflow()
    now = timezone.now()
    WorkflowThrottle.objects.create(
        workflow=workflow,
        circuit="open",
        circuit_since=now,
        last_error="HTTP 503 upstream_error: down",
        next_probe_at=now + timedelta(seconds=30),
    )

    listing = admin_client.get(reverse("admin:batches_workflow_changelist")).content.decode()
    change = admin_client.get(reverse("admin:batches_workflow_change", args=[workflow.pk])).content.decode()

    for page in (listing, change):
        assert "Waiting for Dify since" in page and "HTTP 503 upstream_error: down" in page


def test_admin_names_rows_from_one(admin_client: Any, make_batch: Any) -> None:
    batch = make_batch(rows=1)
    row = Execution.objects.get(batch=batch)

    response = admin_client.get(reverse("admin:batches_execution_changelist"))

    assert str(row) == f"#{batch.pk} row 1"
    assert "row" in response.context["cl"].list_display and "index" not in response.context["cl"].list_display


def test_staff_without_view_permission_cannot_open_the_admin_execution_page(login: Any, make_batch: Any) -> None:
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.FAILED)
    client = login("batches.retry_execution")

    response = client.get(reverse("admin:batches_execution_change", args=[execution.pk]))

    assert response.status_code == 403
