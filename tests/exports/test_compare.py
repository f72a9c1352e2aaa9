"""The comparison export (batches.exports.compare): the most common output keys get columns, the rest are kept whole
in one column per side."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.urls import reverse

from batches.exports import compare as compare_export
from tests.selectors.test_results import KEYS_PER_ROW, ROWS, answer_wide


def test_compare_export_gives_the_most_common_keys_columns_and_keeps_the_rest_whole(
    login: Any, make_batch: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(compare_export, "MAX_OUTPUT_COLUMNS", 5)
    a, b = make_batch(rows=ROWS), make_batch(rows=ROWS)
    answer_wide(a)
    answer_wide(b)
    client = login()

    response = client.get(reverse("batches:batch_compare_export", args=[a.pk, b.pk, "csv"]))
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))

    header = lines[0]
    assert len(header) == 3 + 1 + 2 + 2 * (5 + 1) + 1  # pair, input, statuses, 5 keys and the others, both sides
    assert header[6:8] == [f"answer #{a.pk}", f"answer #{b.pk}"] and header[-3] == f"other outputs #{a.pk}"
    others = json.loads(lines[1][-3])
    assert len(others) == KEYS_PER_ROW + 1 - 5 + 1  # row 0 has no score: all its keys but the 4 shown ones
