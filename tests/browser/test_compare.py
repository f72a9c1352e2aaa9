"""The results and compare pages in a real headless Chromium: search in Chinese, then filter to differences."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("playwright")

from playwright.sync_api import Browser, expect  # noqa: E402

from batches.choices import ExecutionStatus
from batches.models import BatchTask, Execution  # noqa: E402
from tests.browser.test_staff_pages import VIEWPORT, browser, log_in, shot, site  # noqa: E402, F401 - fixtures

E = ExecutionStatus
ROWS = [
    ({"city": "北京", "question": "今天天气怎么样？"}, {"answer": "晴，25°C", "tone": "neutral"}),
    ({"city": "上海", "question": "明天会下雨吗？"}, {"answer": "会，有小雨", "tone": "neutral"}),
    ({"city": "Paris", "question": "Weather tomorrow?"}, {"answer": "Cloudy, 14°C", "tone": "neutral"}),
    ({"city": "广州", "question": "周末适合出游吗？"}, {"answer": "适合", "tone": "friendly"}),
]


def make_run(make_batch: Any, name: str, changed: dict[int, dict[str, Any]]) -> BatchTask:
    batch = make_batch(rows=len(ROWS), name=name, columns=["city", "question"], status="finished")
    for index, (inputs, outputs) in enumerate(ROWS):
        Execution.objects.filter(batch=batch, index=index).update(
            inputs=inputs, status=E.SUCCEEDED, outputs={**outputs, **changed.get(index, {})}
        )
    return batch


def test_search_results_then_filter_a_comparison_to_differences(
    site: str,  # noqa: F811 - the fixture imported above
    browser: Browser,  # noqa: F811 - the fixture imported above
    make_batch: Any,
) -> None:
    a = make_run(make_batch, "Weather v1", {})
    b = make_run(make_batch, "Weather v2", {1: {"answer": "不会"}, 3: {"tone": "formal"}})
    page = browser.new_context(viewport=VIEWPORT).new_page()
    log_in(page, site)

    page.goto(f"{site}/batches/{a.pk}/results/")
    page.fill("input[name=q]", "北京")
    page.click(".results-filters button[type=submit]")
    expect(page.locator("table.results tbody tr")).to_have_count(1)
    expect(page.locator("table.results tbody")).to_contain_text("晴，25°C")
    shot(page, "results")

    page.goto(f"{site}/batches/{a.pk}/compare/{b.pk}/")
    expect(page.locator("table.compare tbody tr")).to_have_count(4)
    expect(page.locator("[data-count=different]")).to_have_text("2")
    page.check("input[name=only]")  # applies the filter at once (static batches.js)
    expect(page.locator("table.compare tbody tr")).to_have_count(2)
    expect(page).to_have_url(f"{site}/batches/{a.pk}/compare/{b.pk}/?match=inputs&only=differences")
    expect(page.locator("td.differs")).to_have_count(4)
    expect(page.locator("td.differs").first).to_have_text("会，有小雨")
    shot(page, "compare")


def test_pick_two_batches_on_the_list_then_match_their_rows_by_row_number(
    site: str,  # noqa: F811 - the fixture imported above
    browser: Browser,  # noqa: F811 - the fixture imported above
    make_batch: Any,
) -> None:
    a = make_run(make_batch, "Weather v1", {})
    b = make_run(make_batch, "Weather v2", {1: {"answer": "会，有大雨"}})
    Execution.objects.filter(batch=b, index=2).update(inputs={"city": "Paris", "question": "Météo demain ?"})
    page = browser.new_context(viewport=VIEWPORT).new_page()
    log_in(page, site)

    page.check(f"input[name=batch][value='{a.pk}']")
    page.check(f"input[name=batch][value='{b.pk}']")
    page.click("#compare-form button[type=submit]")
    expect(page).to_have_url(f"{site}/batches/{b.pk}/compare/{a.pk}/")  # the list shows the newest first
    expect(page.locator("[data-count=only_a]")).to_have_text("1")  # Paris asked in French: other inputs
    page.wait_for_load_state()  # batches.js binds the select's change once the page has loaded
    page.select_option("select[name=match]", "row")  # applies at once
    expect(page).to_have_url(f"{site}/batches/{b.pk}/compare/{a.pk}/?match=row")
    expect(page.locator("[data-count=only_a]")).to_have_text("0")
    expect(page.locator("[data-count=different]")).to_have_text("1")
    expect(page.locator("td.differs del")).to_have_text("大")  # A is the newer batch here
    expect(page.locator("td.differs ins")).to_have_text("小")
    shot(page, "compare-any")
