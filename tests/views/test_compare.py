"""The comparison pages (views.compare): two batches chosen on the batch list or a batch page, rows matched by the
chosen key, outputs side by side with the changed words of differing texts marked, counts, the differences filter,
and the export with its per-user limit."""

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
from batches.selectors.compare import DIFFERENT, ONLY_A, ONLY_B, SAME
from batches.views.compare import COMPARE_PAGE_SIZE
from tests.compare_rows import fill

E = ExecutionStatus


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
