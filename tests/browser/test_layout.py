"""Every staff page fits 1024 and 1280 px wide windows, in English and Chinese, with no horizontal scroll.

The site holds what made pages too wide before: batches with failures and every control, long names, long
unbroken errors in a row's attempts, many input and output columns.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("playwright")

from django.utils import timezone  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from batches.choices import BatchStatus, ErrorType, ExecutionStatus
from batches.models import Attempt, BatchTask, Execution  # noqa: E402
from tests.browser.test_staff_pages import browser, log_in, site  # noqa: E402, F401 - fixtures

E = ExecutionStatus
LONG_NAME = "Quarterly product descriptions for the spring catalogue, in English, German and Simplified Chinese"
LONG_ERROR = "HTTP 400 invalid_param: " + "x" * 40 + "/".join(f"segment{n}" for n in range(30))
LANGUAGES = {"en": {}, "zh-hans": {"locale": "zh-CN", "extra_http_headers": {"Accept-Language": "zh-Hans"}}}
WIDTHS = [1024, 1280]
COLUMNS = [f"column_{n}" for n in range(8)]
CSV = ("text,lang\n" + "".join(f"row {n} {'lorem ipsum ' * 8},en\n" for n in range(5))).encode()


def fill_batch(batch: BatchTask, failed: int) -> None:
    """Succeeded rows with wide inputs and outputs, the first `failed` rows failed with a long error."""
    inputs = {key: f"{key} {'值' * 30}" for key in COLUMNS}
    outputs = {f"out_{n}": "Lorem ipsum dolor sit amet " * 4 for n in range(6)}
    Execution.objects.filter(batch=batch).update(inputs=inputs, status=E.SUCCEEDED, outputs=outputs)
    Execution.objects.filter(batch=batch, index__lt=failed).update(
        status=E.FAILED, outputs=None, error_type=ErrorType.INVALID_INPUT, error=LONG_ERROR, attempt_count=3
    )


def with_attempts(row: Execution) -> None:
    now = timezone.now()
    for number in (1, 2, 3):
        Attempt.objects.create(
            execution=row,
            number=number,
            started_at=now,
            finished_at=now + timedelta(seconds=2),
            outcome=Attempt.Outcome.FAILED,
            error_type=ErrorType.INVALID_INPUT,
            error=LONG_ERROR,
            http_status=400,
            upstream_status="failed",
            workflow_run_id="0f6c4a8e-6d0b-4c7a-9a0e-2f3f7f1d9b1c",
            latency=1.234,
            total_tokens=1234,
        )


@pytest.fixture
def pages(site: str, make_batch: Any, make_workflow: Any) -> list[str]:  # noqa: F811 - the fixture imported above
    """The paths of every staff page, over batches that show every control."""
    workflow = make_workflow(name="A workflow with a rather long name for its table cell")
    make_batch(rows=1, pk=99000, workflow=workflow)  # ids of a long history are wider: "#99001" in every label
    now = timezone.now()
    running = make_batch(rows=12, name=LONG_NAME, workflow=workflow, status=BatchStatus.RUNNING, columns=COLUMNS)
    running.started_at = now - timedelta(minutes=3)
    running.save(update_fields=["started_at"])
    fill_batch(running, failed=4)
    Execution.objects.filter(batch=running, index__gte=10).update(status=E.PENDING, outputs=None)
    finished = make_batch(rows=12, name=LONG_NAME + " (again)", workflow=workflow, columns=COLUMNS)
    fill_batch(finished, failed=2)
    finished.status, finished.started_at, finished.finished_at = BatchStatus.FINISHED, now - timedelta(hours=1), now
    finished.save(update_fields=["status", "started_at", "finished_at"])
    make_batch(rows=3, name="Paused " + LONG_NAME, workflow=workflow, status=BatchStatus.PAUSED)
    row = running.executions.get(index=0)
    with_attempts(row)
    return [
        "/",
        f"/batches/{running.pk}/",
        f"/batches/{running.pk}/failures/",
        f"/batches/{running.pk}/results/",
        f"/batches/{running.pk}/rerun/",
        f"/batches/{running.pk}/compare/{finished.pk}/",
        f"/batches/{finished.pk}/",
        f"/executions/{row.pk}/",
        "/batches/new/",
        "/workflows/",
        "/workflows/add/",
        f"/workflows/{workflow.pk}/",
    ]


def overflow(page: Page) -> tuple[int, int]:
    return page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_page_fits_the_window_without_horizontal_scroll(
    site: str,  # noqa: F811 - the fixture imported above
    browser: Browser,  # noqa: F811 - the fixture imported above
    pages: list[str],
    language: str,
    width: int,
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, **LANGUAGES[language])
    page = context.new_page()
    log_in_any(page, site)
    too_wide = {}

    for path in pages:
        response = page.goto(f"{site}{path}")
        assert response is not None and response.status == 200, path
        if (size := overflow(page))[0] > size[1]:
            too_wide[path] = size
    page.goto(f"{site}/batches/new/")
    page.set_input_files("#id_file", files=[{"name": "rows.csv", "mimeType": "text/csv", "buffer": CSV}])
    page.click("button[type=submit].primary")
    expect(page.locator("table.preview")).to_be_visible()
    if (size := overflow(page))[0] > size[1]:
        too_wide["preview"] = size

    context.close()
    assert too_wide == {}


def log_in_any(page: Page, site: str) -> None:  # noqa: F811
    """log_in, whatever the language of the page."""
    page.goto(f"{site}/admin/login/?next=/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "browser-test-password")
    page.click("input[type=submit]")
    expect(page.locator("table.batches")).to_be_visible()
