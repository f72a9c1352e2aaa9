"""The results page and its JSON: every row's inputs and outputs, filters, search (Chinese too), paging, escaping."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from batches.choices import ErrorType, ExecutionStatus
from batches.models import BatchTask, Execution
from batches.views.results import RESULTS_PAGE_SIZE

E = ExecutionStatus
unescape = importlib.import_module("batches.migrations.0004_i17_results_reruns").unescape_json


def url(name: str, *args: Any) -> str:
    return reverse(f"batches:{name}", args=args)


@pytest.fixture
def batch(make_batch: Any) -> BatchTask:
    batch = make_batch(rows=4, columns=["city", "text"])
    rows = [
        ({"city": "北京", "text": "天气怎么样"}, E.SUCCEEDED, {"answer": "北京今天晴", "score": 1}, "", ""),
        ({"city": "Paris", "text": "weather?"}, E.SUCCEEDED, {"answer": "Sunny in Paris", "score": 2}, "", ""),
        ({"city": "上海", "text": "<script>alert(1)</script>"}, E.FAILED, None, ErrorType.TIMEOUT, "read timeout"),
        ({"city": "Rome", "text": "hi"}, E.SUCCEEDED, {"answer": "<b>x</b><script>y()</script>"}, "", ""),
    ]
    for index, (inputs, status, outputs, error_type, error) in enumerate(rows):
        Execution.objects.filter(batch=batch, index=index).update(
            inputs=inputs, status=status, outputs=outputs, error_type=error_type, error=error
        )
    return batch


def results(client: Client, batch: BatchTask, **params: Any) -> dict[str, Any]:
    response = client.get(url("batch_results_json", batch.pk), params)
    assert response.status_code == 200
    return response.json()


def test_json_lists_every_row_with_inputs_outputs_and_one_based_row_numbers(login: Any, batch: BatchTask) -> None:
    client = login()

    data = results(client, batch)

    assert data["count"] == 4 and data["pages"] == 1
    assert [row["row"] for row in data["results"]] == [1, 2, 3, 4]
    assert [row["index"] for row in data["results"]] == [0, 1, 2, 3]
    assert data["input_columns"] == ["city", "text"]
    assert data["output_columns"] == ["answer", "score"]
    assert data["results"][0]["outputs"] == {"answer": "北京今天晴", "score": 1}
    assert data["results"][2]["error_type"] == "timeout"


@pytest.mark.parametrize(
    ("q", "rows"),
    [("北京", [1]), ("上海", [3]), ("晴", [1]), ("paris", [2]), ("TIMEOUT", [3]), ("nothing-like-this", [])],
)
def test_search_finds_inputs_outputs_and_errors_in_any_script(login: Any, batch: BatchTask, q: str, rows: list) -> None:
    client = login()

    data = results(client, batch, q=q)

    assert [row["row"] for row in data["results"]] == rows


@pytest.mark.parametrize("q", ["ünï", "ÜNÏ", "Ünï", "straße", "σοφία"])
def test_search_folds_case_outside_ascii_on_both_databases(login: Any, batch: BatchTask, q: str) -> None:
    Execution.objects.filter(batch=batch, index=1).update(inputs={"city": "Ünï Straße", "text": "ΣΟΦΊΑ"})
    client = login()

    data = results(client, batch, q=q)

    assert [row["row"] for row in data["results"]] == [2]


def test_search_treats_like_wildcards_as_text(login: Any, batch: BatchTask) -> None:
    client = login()

    assert results(client, batch, q="%")["results"] == []
    assert results(client, batch, q="_")["results"] == []


def test_filters_by_status_and_error_type(login: Any, batch: BatchTask) -> None:
    client = login()

    assert [r["row"] for r in results(client, batch, status="succeeded")["results"]] == [1, 2, 4]
    assert [r["row"] for r in results(client, batch, error_type="timeout")["results"]] == [3]
    assert [r["row"] for r in results(client, batch, status="succeeded", q="北京")["results"]] == [1]
    assert results(client, batch, status="bogus")["count"] == 4  # an unknown value is no filter, not an error


def test_pages_keep_the_filter_and_never_fail_on_bad_page_numbers(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=RESULTS_PAGE_SIZE * 2 + 5)
    client = login()

    last = results(client, batch, page=3)
    beyond = results(client, batch, page=999)
    junk = results(client, batch, page="x")
    search = results(client, batch, q="row", page=2)

    assert last["pages"] == 3 and [r["row"] for r in last["results"]] == list(range(101, 106))
    assert beyond["page"] == 3
    assert junk["page"] == 1 and junk["results"][0]["row"] == 1
    assert search["count"] is None and search["has_next"] is True and search["results"][0]["row"] == 51
    page = client.get(url("batch_results", batch.pk), {"status": "pending", "page": 2})
    assert b"status=pending&amp;page=3" in page.content and b"status=pending&amp;page=1" in page.content


def test_filtered_pages_start_where_the_previous_ended(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=RESULTS_PAGE_SIZE * 4)
    Execution.objects.filter(batch=batch, index__in=range(1, RESULTS_PAGE_SIZE * 4, 2)).update(status=E.SUCCEEDED)
    client = login()

    pages = [results(client, batch, status="succeeded", page=n) for n in (1, 2, 3)]

    assert [row["row"] for row in pages[1]["results"]] == list(
        range(2 * RESULTS_PAGE_SIZE + 2, 4 * RESULTS_PAGE_SIZE + 1, 2)
    )
    assert pages[2]["page"] == 2 and pages[0]["count"] == 2 * RESULTS_PAGE_SIZE


def test_page_escapes_script_in_inputs_and_outputs(login: Any, batch: BatchTask) -> None:
    client = login()

    html = client.get(url("batch_results", batch.pk)).content.decode()

    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>y()</script>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "北京今天晴" in html


def test_long_values_are_clipped_with_a_link_to_the_row(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=1)
    row = Execution.objects.get(batch=batch)
    Execution.objects.filter(pk=row.pk).update(status=E.SUCCEEDED, outputs={"text": "长" * 1000})
    client = login()

    html = client.get(url("batch_results", batch.pk)).content.decode()

    assert "长" * 1000 not in html and "长" * 100 in html
    assert url("execution_detail", row.pk) in html


def test_query_count_does_not_grow_with_rows(login: Any, make_batch: Any, django_assert_num_queries: Any) -> None:
    small, large = make_batch(rows=3), make_batch(rows=RESULTS_PAGE_SIZE * 3)
    Execution.objects.update(status=E.SUCCEEDED, outputs={"answer": "ok"})
    client = login()

    for name in ("batch_results", "batch_results_json"):
        for params in ({}, {"status": "succeeded"}, {"q": "row"}, {"page": 2}):
            with CaptureQueriesContext(connection) as small_page:
                client.get(url(name, small.pk), params)
            with django_assert_num_queries(len(small_page.captured_queries)):
                assert client.get(url(name, large.pk), params).status_code == 200


def test_batch_page_and_list_link_to_the_results(login: Any, batch: BatchTask) -> None:
    client = login()

    for page in (url("batch_detail", batch.pk), url("batch_list")):
        assert url("batch_results", batch.pk).encode() in client.get(page).content


def test_results_need_staff(client: Client, django_user_model: Any, batch: BatchTask) -> None:
    client.force_login(django_user_model.objects.create_user("outsider"))

    assert client.get(url("batch_results", batch.pk)).status_code == 302
    assert client.get(url("batch_results_json", batch.pk)).status_code == 403


def test_json_is_stored_without_unicode_escapes(make_batch: Any) -> None:
    batch = make_batch(rows=1)
    Execution.objects.filter(batch=batch).update(inputs={"city": "北京"}, outputs={"answer": "晴"})

    with connection.cursor() as cursor:
        sql = "SELECT CAST(inputs AS text), CAST(outputs AS text) FROM batches_execution WHERE batch_id = %s"
        cursor.execute(sql, [batch.pk])
        stored = cursor.fetchone()

    assert "北京" in stored[0] and "晴" in stored[1]


def test_admin_execution_search_finds_chinese(admin_client: Client, batch: BatchTask) -> None:
    params = {"q": "北京", "batch__id__exact": batch.pk}
    response = admin_client.get(reverse("admin:batches_execution_changelist"), params)

    assert response.context["cl"].result_count == 1


def test_migration_rewrites_rows_stored_with_escapes(make_batch: Any) -> None:
    batch = make_batch(rows=2)
    row = Execution.objects.get(batch=batch, index=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE batches_execution SET inputs = %s, outputs = %s WHERE id = %s",
            ['{"city": "\\u5317\\u4eac"}', '{"answer": "\\u6674"}', row.pk],
        )
    assert not Execution.objects.filter(batch=batch).extra(where=["CAST(inputs AS text) LIKE '%%北京%%'"]).exists()

    unescape(apps, None)

    found = Execution.objects.filter(batch=batch).extra(where=["CAST(inputs AS text) LIKE '%%北京%%'"])
    assert list(found) == [row]
    assert Execution.objects.get(pk=row.pk).outputs == {"answer": "晴"}
    assert Execution.objects.get(batch=batch, index=1).inputs == {"text": "row 1"}
