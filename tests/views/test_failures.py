"""A batch's failed rows and the retry form (views.failures)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from batches.choices import BatchStatus, ErrorType
from batches.models import Execution
from tests.views.helpers import RETRY, E, S, fail_rows, messages_of, retry_data, set_rows, url


def test_failures_lists_failed_rows_with_error_attempts_and_status(admin_client, make_batch):
    batch = make_batch(rows=5, status=S.FINISHED)
    fail_rows(batch, 2, error="bad gateway")
    set_rows(batch, [2], status=E.CANCELLED, error_type=ErrorType.CANCELLED)

    response = admin_client.get(url("batch_failures", batch.pk))

    rows = list(response.context["page"])
    assert [row.index for row in rows] == [0, 1]
    html = response.content.decode()
    assert "bad gateway" in html
    assert ">502<" in html
    assert url("execution_detail", rows[0].pk) in html
    assert 'name="execution"' in html


def test_failures_filter_by_error_type_and_ignore_unknown_ones(admin_client, make_batch):
    batch = make_batch(rows=5, status=S.FINISHED)
    fail_rows(batch, 2)
    set_rows(batch, [3, 4], status=E.FAILED, error_type=ErrorType.TIMEOUT)

    timeouts = admin_client.get(url("batch_failures", batch.pk), {"error_type": "timeout"})
    unknown = admin_client.get(url("batch_failures", batch.pk), {"error_type": "nonsense"})

    assert [row.index for row in timeouts.context["page"]] == [3, 4]
    assert "Retry all “Timeout” (2)" in timeouts.content.decode()
    assert [row.index for row in unknown.context["page"]] == [0, 1, 3, 4]


def test_failures_are_paginated_by_50(admin_client, make_batch):
    batch = make_batch(rows=60, status=S.FINISHED)
    fail_rows(batch, 60)

    first = admin_client.get(url("batch_failures", batch.pk))
    second = admin_client.get(url("batch_failures", batch.pk), {"page": 2})

    assert len(first.context["page"]) == 50
    assert [row.index for row in second.context["page"]] == list(range(50, 60))


def test_failures_offer_no_retry_without_permission(login, failed_batch):
    response = login().get(url("batch_failures", failed_batch.pk))

    html = response.content.decode()
    assert response.context["can_retry"] is False
    assert 'name="one"' not in html
    assert 'value="all"' not in html


RETRIES = [
    # (scope, selected indexes, extra fields, pending afterwards, message level, message)
    ("one", [2], {}, [2], "success", "Retrying 1 failed execution."),
    ("selected", [0, 3], {}, [0, 3], "success", "Retrying 2 failed executions."),
    ("selected", [0, 4], {}, [0], "warning", "Retrying 1 failed execution. 1 was skipped: it is no longer failed."),
    ("error_type", [], {"error_type": "timeout"}, [2, 3], "success", "Retrying 2 failed executions."),
    ("all", [], {"error_type": "timeout"}, [0, 1, 2, 3], "success", "Retrying 4 failed executions."),
    ("one", [4], {}, [], "warning", "No failed executions to retry."),
    ("selected", [], {}, [], "error", "Select at least one execution to retry."),
    ("error_type", [], {}, [], "error", "Choose an error type to retry."),
    ("", [], {}, [], "error", "Choose which executions to retry."),
]


@pytest.mark.parametrize(("scope", "indexes", "extra", "pending", "level", "text"), RETRIES)
def test_each_retry_path_retries_what_it_says_and_reports(
    controller, mixed_batch, scope, indexes, extra, pending, level, text
):
    failures = url("batch_failures", mixed_batch.pk) + "?error_type=timeout"
    data = {**retry_data(mixed_batch, scope, indexes, **extra), "next": failures}

    response = controller.post(url("batch_retry", mixed_batch.pk), data, follow=True)

    assert response.redirect_chain == [(failures, 302)]
    assert messages_of(response) == [(level, text)]
    assert sorted(mixed_batch.executions.pending().values_list("index", flat=True)) == pending
    assert mixed_batch.executions.get(index=5).status == E.CANCELLED  # cancelled rows are not failures
    mixed_batch.refresh_from_db()
    assert mixed_batch.status == (S.RUNNING if pending else S.FINISHED)


def test_retry_of_rows_of_another_batch_does_nothing(controller, mixed_batch, make_batch):
    other = make_batch(rows=2, status=S.FINISHED)
    fail_rows(other, 2)

    response = controller.post(url("batch_retry_json", mixed_batch.pk), {"one": other.executions.first().pk})

    assert response.json()["retried"] == 0
    assert other.executions.failed().count() == 2


def test_retrying_every_failure_asks_first(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=2, status=BatchStatus.FINISHED)
    Execution.objects.update(status=E.FAILED, error_type=ErrorType.TIMEOUT)
    client = login(RETRY)

    failures = client.get(reverse("batches:batch_failures", args=[batch.pk])).content.decode()
    detail = client.get(reverse("batches:batch_detail", args=[batch.pk])).content.decode()

    assert 'value="all" data-confirm="Retry every failed row of this batch?' in failures
    assert 'data-confirm="Retry all 2 failed rows? They are sent to the app again."' in detail
