"""Comparing two batches (views.compare, selectors.compare): chosen on the batch list or a batch page; rows paired by
inputs in order of occurrence, by row number or by a key column; outputs side by side with the changed words of
differing texts marked; counts and export."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from batches.choices import ExecutionStatus
from batches.models import BatchTask, Execution
from batches.selectors.compare import DIFFERENT, ONLY_A, ONLY_B, SAME, Match, compare
from batches.views.compare import COMPARE_PAGE_SIZE

E = ExecutionStatus


def fill(batch: BatchTask, rows: list[tuple[dict[str, Any], str, Any]]) -> dict[int, int]:
    """Give the batch's rows these (inputs, status, outputs); returns {index: execution id}."""
    Execution.objects.filter(batch=batch).delete()
    made = Execution.objects.bulk_create(
        Execution(batch=batch, index=i, inputs=inputs, status=status, outputs=outputs)
        for i, (inputs, status, outputs) in enumerate(rows)
    )
    return {row.index: row.pk for row in made}


@pytest.fixture
def pair(make_batch: Any) -> tuple[BatchTask, BatchTask, dict[int, int], dict[int, int]]:
    """A: q1 q2 q1 q3 (q1 twice); B in another order, q1 once more, q3 missing, q4 new, keys reordered."""
    a, b = make_batch(rows=0, columns=["q", "n"]), make_batch(rows=0, columns=["q", "n"])
    ids_a = fill(
        a,
        [
            ({"q": "一", "n": 1}, E.SUCCEEDED, {"text": "甲", "score": 1}),
            ({"q": "two", "n": 2}, E.SUCCEEDED, {"text": "B", "score": 2}),
            ({"q": "一", "n": 1}, E.SUCCEEDED, {"text": "乙", "score": 1}),
            ({"q": "three", "n": 3}, E.FAILED, None),
        ],
    )
    ids_b = fill(
        b,
        [
            ({"n": 2, "q": "two"}, E.SUCCEEDED, {"score": 2, "text": "B"}),
            ({"q": "一", "n": 1}, E.SUCCEEDED, {"text": "甲", "score": 1}),
            ({"q": "四", "n": 4}, E.SUCCEEDED, {"text": "D", "score": 4}),
            ({"q": "一", "n": 1}, E.SUCCEEDED, {"text": "丙", "score": 1}),
            ({"q": "一", "n": 1}, E.FAILED, None),
        ],
    )
    return a, b, ids_a, ids_b


def test_rows_pair_by_inputs_in_order_of_occurrence(pair: Any) -> None:
    a, b, ids_a, ids_b = pair

    result = compare(a, b)

    assert result.pairs == [
        (ids_a[0], ids_b[1], SAME),  # first 一 with first 一
        (ids_a[1], ids_b[0], SAME),  # key order and position do not matter
        (ids_a[2], ids_b[3], DIFFERENT),  # second 一 with second 一: 乙 against 丙
        (ids_a[3], None, ONLY_A),
        (None, ids_b[2], ONLY_B),
        (None, ids_b[4], ONLY_B),  # third 一 has no partner in A
    ]
    assert result.counts == {SAME: 2, DIFFERENT: 1, ONLY_A: 1, ONLY_B: 2}


def test_same_outputs_with_another_status_differ(make_batch: Any) -> None:
    a, b = make_batch(rows=0), make_batch(rows=0)
    fill(a, [({"q": 1}, E.FAILED, None)])
    fill(b, [({"q": 1}, E.CANCELLED, None)])

    assert compare(a, b).counts[DIFFERENT] == 1


def test_page_shows_counts_and_highlights_the_differing_key(login: Any, pair: Any) -> None:
    a, b, _, _ = pair
    client = login()

    html = client.get(reverse("batches:batch_compare", args=[a.pk, b.pk])).content.decode()

    for kind, count in {"same": 2, "different": 1, "only_a": 1, "only_b": 2}.items():
        assert f'data-count="{kind}">{count}<' in html
    assert html.count('class="cell differs"') == 2  # "text" of A and of B in the one different pair
    assert (
        '<td class="cell differs"><del>乙</del></td>' in html and '<td class="cell differs"><ins>丙</ins></td>' in html
    )


def test_filter_shows_only_differences(login: Any, pair: Any) -> None:
    a, b, _, _ = pair
    client = login()

    html = client.get(reverse("batches:batch_compare", args=[a.pk, b.pk]), {"only": "differences"}).content.decode()

    assert html.count('data-kind="same"') == 0 and html.count('data-kind="different"') == 1
    assert html.count('data-kind="only_a"') == 1 and html.count('data-kind="only_b"') == 2


def test_export_csv_and_xlsx_hold_every_pair(login: Any, pair: Any) -> None:
    a, b, _, _ = pair
    client = login()
    base = reverse("batches:batch_compare_export", args=[a.pk, b.pk, "csv"])

    response = client.get(base)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    xlsx = client.get(reverse("batches:batch_compare_export", args=[a.pk, b.pk, "xlsx"]), {"only": "differences"})
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active

    assert lines[0][:5] == [f"row #{a.pk}", f"row #{b.pk}", "result", "q", "n"]
    assert [line[2] for line in lines[1:]] == ["same", "same", "different", "only_a", "only_b", "only_b"]
    assert lines[3][-1] == "text" and lines[3][0:2] == ["3", "4"]
    assert response["Content-Disposition"] == f'attachment; filename="compare-{a.pk}-{b.pk}.csv"'
    assert [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        "different",
        "only_a",
        "only_b",
        "only_b",
    ]


def test_unknown_batch_or_format_is_a_404(login: Any, pair: Any) -> None:
    a, _, _, _ = pair
    client = login()

    assert client.get(reverse("batches:batch_compare", args=[a.pk, 999999])).status_code == 404
    assert client.get(reverse("batches:batch_compare_export", args=[a.pk, a.pk, "pdf"])).status_code == 404


def test_pages_read_only_their_rows(login: Any, make_batch: Any) -> None:
    small_a, small_b = make_batch(rows=3), make_batch(rows=3)
    large_a, large_b = make_batch(rows=COMPARE_PAGE_SIZE * 3), make_batch(rows=COMPARE_PAGE_SIZE * 3 + 7)
    client = login()
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("batches:batch_compare", args=[small_a.pk, small_b.pk]))

    with CaptureQueriesContext(connection) as large:
        response = client.get(reverse("batches:batch_compare", args=[large_a.pk, large_b.pk]), {"page": 4})

    assert len(large.captured_queries) == len(small.captured_queries)
    assert response.context["number"] == 4 and len(response.context["rows"]) == 7


def test_compare_is_staff_only(client: Client, django_user_model: Any, pair: Any) -> None:
    a, b, _, _ = pair
    client.force_login(django_user_model.objects.create_user("outsider"))

    assert client.get(reverse("batches:batch_compare", args=[a.pk, b.pk])).status_code == 302


def test_an_ended_batch_compared_again_after_a_retry_sees_the_new_results(make_batch: Any) -> None:
    """The fingerprints kept for an ended batch are keyed by its end: a retry and a new end are seen."""
    from django.core.cache import cache
    from django.utils import timezone

    cache.clear()
    a, b = make_batch(rows=0, status="finished"), make_batch(rows=0, status="finished")
    BatchTask.objects.filter(pk__in=[a.pk, b.pk]).update(finished_at=timezone.now())
    a.refresh_from_db(), b.refresh_from_db()
    fill(a, [({"q": 1}, E.SUCCEEDED, {"x": 1})])
    ids_b = fill(b, [({"q": 1}, E.FAILED, None)])
    assert compare(a, b).counts[DIFFERENT] == 1

    Execution.objects.filter(pk=ids_b[0]).update(status=E.SUCCEEDED, outputs={"x": 1})
    BatchTask.objects.filter(pk=b.pk).update(finished_at=timezone.now() + timezone.timedelta(seconds=1))
    b.refresh_from_db()

    assert compare(a, b).counts[SAME] == 1


def test_a_second_concurrent_export_of_one_user_is_refused_with_429(login: Any, pair: Any, settings: Any) -> None:
    """Each export holds a slot until its stream ends or is closed: a user cannot occupy every web thread."""
    settings.BATCHES_MAX_EXPORTS_PER_USER = 1
    a, b, _, _ = pair
    client = login()
    export = reverse("batches:batch_compare_export", args=[a.pk, b.pk, "csv"])
    first = client.get(export)

    second = client.get(export)
    other_batch_export = client.get(reverse("batches:batch_export", args=[a.pk, "csv"]))
    b"".join(first.streaming_content)  # the first ends: its slot is free again
    third = client.get(export)

    assert first.status_code == 200
    assert second.status_code == 429 and other_batch_export.status_code == 429
    assert "export" in second.content.decode() and second["Retry-After"]
    assert third.status_code == 200 and b"".join(third.streaming_content)


def test_another_user_exports_while_one_user_holds_the_limit(login: Any, pair: Any, settings: Any) -> None:
    settings.BATCHES_MAX_EXPORTS_PER_USER = 1
    a, b, _, _ = pair
    export = reverse("batches:batch_compare_export", args=[a.pk, b.pk, "csv"])
    held = login().get(export)

    other = login().get(export)

    assert held.status_code == 200 and other.status_code == 200


@pytest.fixture
def two(make_batch: Any) -> tuple[BatchTask, BatchTask, dict[int, int], dict[int, int]]:
    """Two files about the same products with other prompts: only the `sku` column and the row order agree."""
    a, b = make_batch(rows=0, columns=["sku", "prompt"]), make_batch(rows=0, columns=["sku", "prompt"])
    ids_a = fill(
        a,
        [
            ({"sku": "A1", "prompt": "describe"}, E.SUCCEEDED, {"text": "a red mug"}),
            ({"sku": "B2", "prompt": "describe"}, E.SUCCEEDED, {"text": "a blue cup"}),
            ({"sku": "C3", "prompt": "describe"}, E.SUCCEEDED, {"text": "a green bowl"}),
        ],
    )
    ids_b = fill(
        b,
        [
            ({"sku": "B2", "prompt": "describe briefly"}, E.SUCCEEDED, {"text": "a blue cup"}),
            ({"sku": "A1", "prompt": "describe briefly"}, E.SUCCEEDED, {"text": "a big red mug"}),
        ],
    )
    return a, b, ids_a, ids_b


def test_rows_with_other_inputs_do_not_pair_by_inputs(two: Any) -> None:
    a, b, _, _ = two

    assert compare(a, b).counts == {SAME: 0, DIFFERENT: 0, ONLY_A: 3, ONLY_B: 2}


def test_rows_match_by_a_key_column_whatever_their_order(two: Any) -> None:
    a, b, ids_a, ids_b = two

    result = compare(a, b, Match("key", "sku"))

    assert result.pairs == [(ids_a[0], ids_b[1], DIFFERENT), (ids_a[1], ids_b[0], SAME), (ids_a[2], None, ONLY_A)]


def test_rows_match_by_row_number(two: Any) -> None:
    a, b, ids_a, ids_b = two

    result = compare(a, b, Match("row"))

    assert result.pairs == [(ids_a[0], ids_b[0], DIFFERENT), (ids_a[1], ids_b[1], DIFFERENT), (ids_a[2], None, ONLY_A)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [({}, Match()), ({"match": "row"}, Match("row")), ({"match": "key:sku"}, Match("key", "sku"))]
    + [({"match": "key:nope"}, Match()), ({"match": "other"}, Match())],
)
def test_the_match_is_read_from_the_query_and_unknown_columns_fall_back_to_inputs(query: dict, expected: Match) -> None:
    assert Match.from_query(query, ["sku", "prompt"]) == expected


def test_the_page_matches_by_the_chosen_key_and_offers_every_column(login: Any, two: Any) -> None:
    a, b, _, _ = two

    response = login().get(reverse("batches:batch_compare", args=[a.pk, b.pk]), {"match": "key:sku"})
    html = response.content.decode()

    assert response.context["counts"] == {SAME: 1, DIFFERENT: 1, ONLY_A: 1, ONLY_B: 0}
    assert '<option value="key:sku" selected>' in html and '<option value="row">' in html
    assert "?match=key%3Asku" in html  # the export links keep the match


def test_changed_words_of_a_differing_text_are_marked_and_escaped(login: Any, make_batch: Any) -> None:
    a, b = make_batch(rows=0), make_batch(rows=0)
    fill(a, [({"q": 1}, E.SUCCEEDED, {"text": "The quick brown fox jumps over the <b>lazy</b> dog"})])
    fill(b, [({"q": 1}, E.SUCCEEDED, {"text": "The quick red fox jumps over the <b>lazy</b> dog"})])

    html = login().get(reverse("batches:batch_compare", args=[a.pk, b.pk])).content.decode()

    assert "<del>brown</del>" in html and "<ins>red</ins>" in html
    assert "&lt;b&gt;lazy&lt;/b&gt;" in html and "<b>lazy</b>" not in html


def test_changed_characters_of_chinese_text_are_marked(login: Any, make_batch: Any) -> None:
    a, b = make_batch(rows=0), make_batch(rows=0)
    fill(a, [({"q": 1}, E.SUCCEEDED, {"text": "明天北京有小雨"})])
    fill(b, [({"q": 1}, E.SUCCEEDED, {"text": "明天北京有大雨"})])

    html = login().get(reverse("batches:batch_compare", args=[a.pk, b.pk])).content.decode()

    assert "<del>小</del>" in html and "<ins>大</ins>" in html


def test_two_batches_chosen_on_the_list_open_their_comparison(login: Any, two: Any) -> None:
    a, b, _, _ = two
    client = login()

    response = client.get(reverse("batches:batch_compare_chosen"), {"batch": [a.pk, b.pk], "match": "row"})

    assert response.status_code == 302
    assert response["Location"] == reverse("batches:batch_compare", args=[a.pk, b.pk]) + "?match=row"


@pytest.mark.parametrize("chosen", [[], ["1"], ["1", "2", "3"], ["x", "y"]])
def test_choosing_other_than_two_batches_goes_back_to_the_list_with_a_message(login: Any, chosen: list) -> None:
    response = login().get(reverse("batches:batch_compare_chosen"), {"batch": chosen}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("batches:batch_list")
    assert "Choose two batches to compare." in [m.message for m in response.context["messages"]]


def test_the_list_and_a_batch_page_offer_compare(login: Any, two: Any) -> None:
    a, _, _, _ = two
    client = login()

    listed = client.get(reverse("batches:batch_list")).content.decode()
    detail = client.get(reverse("batches:batch_detail", args=[a.pk])).content.decode()

    chosen = reverse("batches:batch_compare_chosen")
    assert f'action="{chosen}"' in listed and f'name="batch" value="{a.pk}" form="compare-form"' in listed
    assert f'action="{chosen}"' in detail and f'<input type="hidden" name="batch" value="{a.pk}">' in detail


def test_inputs_that_differ_in_a_pair_matched_by_key_are_marked(login: Any, two: Any) -> None:
    a, b, _, _ = two

    html = login().get(reverse("batches:batch_compare", args=[a.pk, b.pk]), {"match": "key:sku"}).content.decode()

    assert html.count("input-differs") == 2  # "prompt" of the two pairs; "sku" is equal
