"""How things read on pages and their JSON twins (batches/views/presenters.py): shaped from what selectors read."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batches.choices import ErrorType
from batches.selectors.batches import Progress
from batches.views import presenters


def progress(**counts: int) -> Progress:
    figures = dict.fromkeys(("pending", "running", "succeeded", "failed", "cancelled"), 0) | counts
    return Progress(total=sum(figures.values()), total_tokens=0, rate_per_minute=0, eta_seconds=None, **figures)


def test_the_progress_bar_counts_every_ended_row_as_done() -> None:
    bar = presenters.progress_bar({"pending": 1, "running": 1, "succeeded": 5, "failed": 2, "cancelled": 1})

    assert (bar["total"], bar["done"], bar["percent"]) == (10, 8, 80)


def test_an_empty_batch_reads_as_complete() -> None:
    assert presenters.progress_bar({"pending": 0, "running": 0})["percent"] == 100
    assert presenters.segments(progress()) == {"succeeded": 0, "failed": 0, "cancelled": 0, "running": 0}


def test_segments_are_percentages_of_all_rows() -> None:
    assert presenters.segments(progress(succeeded=1, failed=1, pending=1)) == {
        "succeeded": 33.33,
        "failed": 33.33,
        "cancelled": 0,
        "running": 0,
    }


def test_error_bars_are_relative_to_the_largest_and_named_by_their_label() -> None:
    bars = presenters.error_bars([(ErrorType.TIMEOUT, 4), ("something_new", 1)])

    assert [(bar["label"], bar["percent"]) for bar in bars] == [
        (str(ErrorType.TIMEOUT.label), 100),
        ("something_new", 25),
    ]


@pytest.mark.parametrize(("seconds", "shown"), [(None, None), (61.4, timedelta(seconds=61))])
def test_the_time_left_is_whole_seconds(seconds: float | None, shown: timedelta | None) -> None:
    assert presenters.eta(seconds) == shown


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("plain", "plain"),
        ({"a": "ü"}, '{"a": "ü"}'),
        ({"transfer_method": "local_file", "type": "document", "file": "docs/a.pdf"}, "docs/a.pdf"),
        ({"transfer_method": "remote_url", "type": "image", "url": "https://x.test/b.png"}, "https://x.test/b.png"),
    ],
)
def test_a_cell_reads_as_its_text_and_a_file_cell_as_its_name(value: object, text: str) -> None:
    assert presenters.cell_text(value) == text


def test_a_long_cell_is_cut_and_says_so() -> None:
    cell = presenters.cell("x" * (presenters.CLIP + 1))

    assert (len(cell.text), cell.text.endswith("…"), cell.clipped) == (presenters.CLIP + 1, True, True)
    assert presenters.cell("short") == presenters.Cell("short", False)
