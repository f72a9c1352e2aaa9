"""The pages' JSON twins: progress, failures and retry (views.api); results.json is in test_results."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from batches.choices import ErrorType
from batches.models import Execution
from tests.views.helpers import E, S, fail_rows, retry_data, set_rows, url


def test_progress_json_has_the_documented_shape(login, make_batch):
    client = login()
    batch = make_batch(rows=4, status=S.RUNNING, concurrency=3)
    fail_rows(batch, 1, error_type=ErrorType.RATE_LIMITED)
    set_rows(batch, [1], status=E.SUCCEEDED, total_tokens=7, finished_at=timezone.now())
    set_rows(batch, [2], status=E.RUNNING)

    data = client.get(url("batch_progress_json", batch.pk)).json()

    assert data["started_at"] is None and data["finished_at"] is None
    assert (data["eta"], data["eta_seconds"]) == ("0:02:00", 120.0)  # 2 rows left at 1 per minute
    del data["started_at"], data["finished_at"], data["eta"], data["eta_seconds"]
    assert data == {
        "upstream": {"state": "closed", "since": None, "last_error": "", "next_probe_at": None},
        "waiting_for_dify": "",
        "id": batch.pk,
        "status": "running",
        "status_display": "Running",
        "status_reason": "",
        "finished": False,
        "concurrency": 3,
        "total": 4,
        "pending": 1,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "done": 2,
        "percent": 50,
        "total_tokens": 7,
        "rate_per_minute": 1,
        "segments": {"succeeded": 25.0, "failed": 25.0, "cancelled": 0.0, "running": 25.0},
        "errors": [{"error_type": "rate_limited", "label": "Rate limited", "count": 1, "percent": 100}],
    }


def test_progress_json_says_when_a_batch_is_over(admin_client, make_batch):
    batch = make_batch(rows=2, status=S.CANCELLED)

    data = admin_client.get(url("batch_progress_json", batch.pk)).json()

    assert (data["status"], data["finished"]) == ("cancelled", True)


def test_failures_json_has_the_documented_shape(login, make_batch):
    batch = make_batch(rows=3, status=S.FINISHED)
    fail_rows(batch, 1, error="no")
    set_rows(batch, [2], status=E.FAILED, error_type=ErrorType.TIMEOUT, error="slow", attempt_count=1)
    row = batch.executions.get(index=2)

    data = login().get(url("batch_failures_json", batch.pk), {"error_type": "timeout", "page": 1}).json()

    assert data == {
        "batch": batch.pk,
        "error_type": "timeout",
        "count": 1,
        "page": 1,
        "pages": 1,
        "results": [
            {
                "id": row.pk,
                "index": 2,
                "row": 3,
                "error_type": "timeout",
                "error": "slow",
                "attempts": 1,
                "http_status": None,
                "finished_at": None,
                "url": url("execution_detail", row.pk),
            }
        ],
    }


def test_failures_json_pages(admin_client, make_batch):
    batch = make_batch(rows=55, status=S.FINISHED)
    fail_rows(batch, 55)

    data = admin_client.get(url("batch_failures_json", batch.pk), {"page": 2}).json()

    assert (data["count"], data["page"], data["pages"]) == (55, 2, 2)
    assert [row["index"] for row in data["results"]] == [50, 51, 52, 53, 54]


def test_retry_json_retries_one_row(controller, mixed_batch):
    data = retry_data(mixed_batch, "one", [1])

    response = controller.post(url("batch_retry_json", mixed_batch.pk), data)

    assert response.json() == {"retried": 1, "skipped": 0, "message": "Retrying 1 failed execution."}
    assert list(mixed_batch.executions.pending().values_list("index", flat=True)) == [1]


def test_retry_json_reports_a_bad_request(controller, mixed_batch):
    response = controller.post(url("batch_retry_json", mixed_batch.pk), {"scope": "selected"})

    assert response.status_code == 400
    assert response.json()["error"] == "Select at least one execution to retry."
    assert not mixed_batch.executions.pending().exists()


def test_retry_json_without_permission_answers_json_403(login, failed_batch):
    client = login()

    response = client.post(url("batch_retry_json", failed_batch.pk), {"scope": "all"})

    assert response.status_code == 403
    assert response.json() == {"error": "You may not retry executions."}
    assert Execution.objects.failed().count() == 2


def test_progress_json_and_batch_status_json_write_the_same_timestamps(admin_client, make_batch):
    batch = make_batch(rows=1, status=S.FINISHED, started_at=timezone.now(), finished_at=timezone.now())
    out = io.StringIO()
    call_command("batch_status", str(batch.pk), "--json", stdout=out)
    status = json.loads(out.getvalue())

    progress = admin_client.get(url("batch_progress_json", batch.pk)).json()

    assert (progress["started_at"], progress["finished_at"]) == (status["started_at"], status["finished_at"])
    assert progress["finished_at"].endswith("Z")  # design.md: ISO-8601, UTC


def test_failures_and_results_json_write_utc_timestamps_with_a_z(admin_client, make_batch):
    batch = make_batch(rows=1, status=S.FINISHED)
    fail_rows(batch, 1)
    set_rows(batch, [0], finished_at=timezone.now())

    failure = admin_client.get(url("batch_failures_json", batch.pk)).json()["results"][0]
    result = admin_client.get(url("batch_results_json", batch.pk)).json()["results"][0]

    assert failure["finished_at"] == result["finished_at"]
    assert failure["finished_at"].endswith("Z")


@pytest.mark.parametrize(
    ("name", "method"), [("batch_retry_json", "post"), ("batch_progress_json", "get"), ("batch_failures_json", "get")]
)
def test_json_endpoints_answer_a_missing_batch_in_json(admin_client: Client, db: None, name: str, method: str) -> None:
    response = getattr(admin_client, method)(reverse(f"batches:{name}", args=[10**9]), {"scope": "all"})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Not found."}
