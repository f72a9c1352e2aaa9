"""Comparing any two batches: chosen on the batch list or a batch page, rows matched by inputs, row number or a key
column, and the changed words of differing texts marked."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from batches.choices import ExecutionStatus
from batches.models import BatchTask
from batches.selectors.compare import DIFFERENT, ONLY_A, ONLY_B, SAME, Match, compare
from tests.views.test_compare import fill

E = ExecutionStatus


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
