"""Pairing the rows of two batches (batches.selectors.compare): by inputs in order of occurrence, by row number or
by a key column; a status differs as much as an output does; an ended batch compared again sees its new results."""

from __future__ import annotations

from typing import Any

import pytest

from batches.choices import ExecutionStatus
from batches.models import BatchTask, Execution
from batches.selectors.compare import DIFFERENT, ONLY_A, ONLY_B, SAME, Match, compare
from tests.compare_rows import fill

E = ExecutionStatus


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
