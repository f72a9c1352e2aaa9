"""The columns of results (batches.selectors.results) for rows answered with thousands of distinct output keys or
files of very many columns: the results page, its JSON and the compare page show a bounded number of columns."""

from __future__ import annotations

import re
import tracemalloc
from typing import Any

from django.urls import reverse

from batches.choices import ExecutionStatus
from batches.models import BatchTask, Execution
from batches.selectors.results import MAX_INPUT_COLUMNS, MAX_OUTPUT_COLUMNS, OTHER_OUTPUTS

ROWS = 10
KEYS_PER_ROW = 300  # 3,000 distinct keys on a page


def answer_wide(batch: BatchTask) -> None:
    """Each row answers `answer`, `score` and KEYS_PER_ROW keys no other row has."""
    for row in Execution.objects.filter(batch=batch):
        outputs = {"answer": f"a{row.index}", **{f"k{row.index}_{n}": n for n in range(KEYS_PER_ROW)}}
        if row.index % 2:
            outputs["score"] = row.index
        row.outputs, row.status = outputs, ExecutionStatus.SUCCEEDED
        row.save(update_fields=["outputs", "status"])


def header_cells(html: str, css: str) -> list[str]:
    return re.findall(rf'<th class="{css}">([^<]*)</th>', html)


def test_results_page_shows_the_most_common_keys_and_one_cell_for_the_others(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=ROWS)
    answer_wide(batch)
    client = login()

    response = client.get(reverse("batches:batch_results", args=[batch.pk]))
    html = response.content.decode()

    columns = header_cells(html, "col-output")
    assert len(columns) == MAX_OUTPUT_COLUMNS + 1
    assert columns[0] == "answer" and "score" in columns and columns[-1] == str(OTHER_OUTPUTS)
    assert len(html) < 200_000  # was 1.2 MB: 3,000 columns on every row


def test_results_json_names_the_same_bounded_columns(login: Any, make_batch: Any) -> None:
    batch = make_batch(rows=ROWS)
    answer_wide(batch)
    client = login()

    data = client.get(reverse("batches:batch_results_json", args=[batch.pk])).json()

    assert len(data["output_columns"]) == MAX_OUTPUT_COLUMNS
    assert data["more_output_columns"] is True
    assert len(data["results"][0]["outputs"]) == KEYS_PER_ROW + 1  # the JSON keeps each row's whole answer


def test_compare_page_shows_a_bounded_number_of_columns(login: Any, make_batch: Any) -> None:
    a, b = make_batch(rows=ROWS), make_batch(rows=ROWS)
    answer_wide(a)
    answer_wide(b)
    Execution.objects.filter(batch=b, index=3).update(outputs={"answer": "changed"})
    client = login()

    html = client.get(reverse("batches:batch_compare", args=[a.pk, b.pk])).content.decode()

    columns = header_cells(html, "col-output")
    assert len(columns) == 2 * (MAX_OUTPUT_COLUMNS + 1)
    assert len(html) < 300_000  # was 2.6 MB


def test_pages_do_not_parse_answers_too_large_for_a_table(login: Any, make_batch: Any) -> None:
    """Rows answered just under the response limit: a page reads each answer's size, not the answer."""
    a, b = make_batch(rows=4), make_batch(rows=4)
    huge = {f"k{n}": n for n in range(60_000)}  # 0.7 MB of JSON, 60,000 objects once parsed
    for batch in (a, b):
        Execution.objects.filter(batch=batch).update(status=ExecutionStatus.SUCCEEDED, outputs=huge)
        Execution.objects.filter(batch=batch, index=0).update(outputs={"answer": "small"})
    client = login()
    client.get(reverse("batches:batch_results", args=[a.pk]))  # templates and translations load once

    tracemalloc.start()
    results = client.get(reverse("batches:batch_results", args=[a.pk])).content.decode()
    compared = client.get(reverse("batches:batch_compare", args=[a.pk, b.pk])).content.decode()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert peak < 8 * 2**20  # was 60 MB: four answers parsed on each page
    assert "small" in results and results.count("open the row") == 3
    assert compared.count("open the row") == 6


def test_a_file_of_very_many_columns_shows_the_first_hundred_and_says_how_many_more(
    login: Any, make_batch: Any
) -> None:
    columns = [f"c{n}" for n in range(MAX_INPUT_COLUMNS + 50)]
    a, b = make_batch(rows=2, columns=columns), make_batch(rows=2, columns=columns)
    Execution.objects.filter(batch__in=[a, b]).update(inputs={column: "v" for column in columns})
    client = login()

    results = client.get(reverse("batches:batch_results", args=[a.pk])).content.decode()
    compared = client.get(reverse("batches:batch_compare", args=[a.pk, b.pk])).content.decode()

    assert len(header_cells(results, "col-input")) == MAX_INPUT_COLUMNS and "50 more input columns" in results
    assert len(header_cells(compared, "col-input")) == MAX_INPUT_COLUMNS and "50 more input columns" in compared
