"""Lists that span the whole history (issue 30): a bounded number of queries, none of them counting or aggregating
every execution; the admin's search exact on ids, and text only within one batch."""

from __future__ import annotations

import contextlib
import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from batches.admin import lists as admin_lists
from batches.admin.model_admins import ExecutionAdmin
from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.models import Attempt, BatchTask, Execution
from tests.admin.helpers import BATCH_CHANGELIST, EXECUTION_CHANGELIST, attempt_for, changelist

E = ExecutionStatus
HISTORY_QUERY = re.compile(r'FROM "batches_execution"')


def whole_history_reads(queries: list[dict[str, str]]) -> list[str]:
    """Statements that read executions without being bounded to some batches, a time window or a LIMIT."""
    found = []
    for query in queries:
        sql = query["sql"]
        if HISTORY_QUERY.search(sql) and not re.search(r'"batch_id" (IN|=)|LIMIT|"finished_at" >=|"id" IN', sql):
            found.append(sql)
    return found


def counts_over_executions(queries: list[dict[str, str]]) -> list[str]:
    return [q["sql"] for q in queries if HISTORY_QUERY.search(q["sql"]) and re.search(r"COUNT\(|SUM\(", q["sql"])]


@pytest.fixture
def history(make_batch):
    batches = [make_batch(rows=30, status=BatchStatus.FINISHED, name=f"batch {n}") for n in range(3)]
    for batch in batches:
        Execution.objects.filter(batch=batch, index__lt=5).update(
            status=E.FAILED, error_type=ErrorType.TIMEOUT, error="read timeout"
        )
        Execution.objects.filter(batch=batch, index__gte=5).update(status=E.SUCCEEDED, total_tokens=3)
        attempt_for(batch.executions.get(index=0))
    return batches


EXECUTION_LISTS = [
    {},
    {"status__exact": "failed"},
    {"error_type__exact": "timeout"},
    {"status__exact": "failed", "error_type__exact": "timeout"},
    {"q": "run-abc"},
    {"q": "12345"},
    {"p": "2"},
]


@pytest.mark.parametrize("params", EXECUTION_LISTS)
def test_the_execution_list_never_counts_the_whole_history(
    admin_client, history, params, django_assert_max_num_queries
):
    with django_assert_max_num_queries(9), CaptureQueriesContext(connection) as captured:
        response = admin_client.get(EXECUTION_CHANGELIST, params)

    assert response.status_code == 200
    assert whole_history_reads(captured.captured_queries) == []


@pytest.mark.parametrize("params", [{}, {"outcome__exact": "failed"}, {"trigger__exact": "auto"}])
def test_the_attempt_list_never_counts_every_attempt(admin_client, history, params, django_assert_max_num_queries):
    with django_assert_max_num_queries(9), CaptureQueriesContext(connection) as captured:
        response = admin_client.get(changelist("attempt"), params)

    assert response.status_code == 200
    assert not [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"] and "LIMIT" not in q["sql"]]


@pytest.mark.parametrize("url", ["/", BATCH_CHANGELIST])
def test_lists_of_batches_read_kept_counts_not_the_rows(admin_client, history, url, django_assert_max_num_queries):
    with django_assert_max_num_queries(14), CaptureQueriesContext(connection) as captured:
        response = admin_client.get(url)

    assert response.status_code == 200
    assert counts_over_executions(captured.captured_queries) == []


@pytest.mark.parametrize("command", [("batch_status", "--json"), ("batches_doctor", "--json")])
def test_commands_over_all_batches_read_kept_counts_not_the_rows(history, command):
    BatchTask.objects.update(finished_at=timezone.now())
    with contextlib.suppress(SystemExit):  # an ended batch's cost and latency are read once, then kept on it
        call_command(*command, stdout=StringIO())
    # The doctor exits 1: no worker cluster runs in a test.
    with CaptureQueriesContext(connection) as captured, contextlib.suppress(SystemExit):
        call_command(*command, stdout=StringIO())

    assert counts_over_executions(captured.captured_queries) == []
    assert len(captured.captured_queries) <= 6


def test_batch_status_json_shows_the_kept_counts(history):
    out = StringIO()

    call_command("batch_status", "--json", stdout=out)

    first = json.loads(out.getvalue())[0]
    assert (first["total"], first["failed"], first["succeeded"], first["total_tokens"]) == (30, 5, 25, 75)


def test_a_list_past_the_cap_says_more_than_the_cap(admin_client, history, monkeypatch):
    monkeypatch.setattr(admin_lists, "COUNT_CAP", 50)

    response = admin_client.get(EXECUTION_CHANGELIST)

    assert response.context["cl"].paginator.capped
    assert "more than 50 executions" in response.content.decode()


def test_search_finds_a_row_by_its_id_run_id_or_task_id_in_any_batch(admin_client, history):
    row = history[0].executions.get(index=7)
    Execution.objects.filter(pk=row.pk).update(workflow_run_id="run-abc", task_id="task-xyz")

    for term in (str(row.pk), "run-abc", "task-xyz", " run-abc "):
        result = admin_client.get(EXECUTION_CHANGELIST, {"q": term}).context["cl"].result_list
        assert [found.pk for found in result] == [row.pk], term


def test_text_search_looks_only_within_the_filtered_batch_and_folds_case(admin_client, history):
    target = history[1]
    Execution.objects.filter(batch=target, index=3).update(inputs={"text": "Ünïcode Needle"})
    Execution.objects.filter(batch=history[2], index=3).update(inputs={"text": "Ünïcode Needle"})

    everywhere = admin_client.get(EXECUTION_CHANGELIST, {"q": "ünïcode needle"}).context["cl"].result_list
    within = admin_client.get(EXECUTION_CHANGELIST, {"q": "ünïcode needle", "batch__id__exact": target.pk})

    assert list(everywhere) == []
    assert [row.index for row in within.context["cl"].result_list] == [3]


def test_a_filtered_batch_lists_its_rows_in_file_order(admin_client, history):
    response = admin_client.get(EXECUTION_CHANGELIST, {"batch__id__exact": history[0].pk})

    assert [row.index for row in response.context["cl"].result_list][:3] == [0, 1, 2]


def test_the_attempt_list_still_pages(admin_client, history):
    assert Attempt.objects.count() == 3

    response = admin_client.get(reverse("admin:batches_attempt_changelist"))

    assert len(response.context["cl"].result_list) == 3


def test_the_prune_action_names_the_counts_then_deletes_only_ended_batches(admin_client, history, make_batch):
    running = make_batch(rows=4, status=BatchStatus.RUNNING)
    chosen = [history[0].pk, running.pk]
    data = {"action": "prune_selected", "_selected_action": chosen}

    page = admin_client.post(BATCH_CHANGELIST, data)
    assert Execution.objects.filter(batch_id=history[0].pk).count() == 30  # nothing deleted before the confirmation
    done = admin_client.post(BATCH_CHANGELIST, {**data, "post": "yes"}, follow=True)

    text = page.content.decode()
    assert "This deletes 1 batch for good" in text and "30 executions" in text and "1 attempt" in text
    assert "1 selected batch is kept" in text
    assert "Deleted 1 batch" in done.content.decode()
    assert not Execution.objects.filter(batch_id=history[0].pk).exists()
    assert Execution.objects.filter(batch=running).count() == 4


def test_the_prune_action_needs_the_delete_permission(login, history):
    client = login("batches.view_batchtask", "batches.change_batchtask")

    client.post(BATCH_CHANGELIST, {"action": "prune_selected", "_selected_action": [history[0].pk], "post": "yes"})

    assert Execution.objects.filter(batch_id=history[0].pk).count() == 30


def test_a_page_past_the_cap_still_opens(admin_client, history, monkeypatch):
    monkeypatch.setattr(admin_lists, "COUNT_CAP", 20)
    monkeypatch.setattr(ExecutionAdmin, "list_per_page", 10)

    response = admin_client.get(EXECUTION_CHANGELIST, {"p": "5"})

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 10
