"""The staff pages in a real headless Chromium: upload, preview, run, watch, fix and retry, and in Chinese.

Rows are run by `batches.runner.worker.Runner` in a background thread of this process, against the fake Dify. Each page
is saved as a screenshot under docs/screenshots/.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed at /usr/bin/chromium", allow_module_level=True)

from django.db import connections  # noqa: E402
from django.utils import timezone  # noqa: E402
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from batches.choices import BatchStatus, ErrorType, ExecutionStatus  # noqa: E402
from batches.models import BatchTask, Execution, Workflow  # noqa: E402
from batches.runner.worker import Runner  # noqa: E402
from fakedify.harness import running_fake_dify  # noqa: E402
from tests.xlsxfiles import xlsx_bytes  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 860}
PASSWORD = "browser-test-password"
TIMEOUT_MS = 20_000

CSV_PREVIEW = "\ufefftext;language\n" + "".join(
    f"{text};{lang}\n"
    for text, lang in [
        ("Summarise the quarterly report in three bullet points", "en"),
        ("把这段产品介绍翻译成英文", "zh"),
        ("Write a friendly reply to a late-delivery complaint", "en"),
        ("列出会议纪要中的待办事项", "zh"),
        ("Classify this review: 'Great value, slow shipping'", "en"),
    ]
)
FAULT = {"_fault": "invalid_param", "_fault_times": 1}  # the first call fails (invalid_input, no auto retry)
NO_FAULT = {"_fault": "", "_fault_times": 0}
JSONL_ROWS = [
    {"text": "Summarise the quarterly report", **NO_FAULT},
    {"text": "Translate the product page", **FAULT},
    {"text": "Reply to the complaint", **NO_FAULT},
    {"text": "Extract the action items", **FAULT},
    {"text": "Classify the review", **NO_FAULT},
    {"text": "Draft the newsletter intro", **FAULT},
    {"text": "Tag the support ticket", **NO_FAULT},
    {"text": "Rewrite the FAQ answer", **NO_FAULT},
]


class BackgroundRunner:
    """Runner slices in a thread, one after another, as django-q2 workers would run them."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="test-runner", daemon=True)

    def loop(self) -> None:
        try:
            while not self.stop.is_set():
                Runner().run(seconds=2)
                self.stop.wait(0.2)
        finally:
            connections.close_all()

    def __enter__(self) -> BackgroundRunner:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def counts(batch: BatchTask) -> dict[str, int]:
    return {status: batch.executions.filter(status=status).count() for status in ExecutionStatus.values}


@pytest.fixture
def fake() -> Iterator[Any]:
    with running_fake_dify("--latency-ms", "50") as server:
        yield server


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # ORM calls made while Playwright's loop ran used connections of their own: close them, or PostgreSQL
        # refuses to drop the test database.
        connections.close_all()


@pytest.fixture
def site(transactional_db: None, live_server: Any, django_user_model: Any, make_workflow: Any, make_batch: Any) -> str:
    """A superuser, and two older batches so the list has something to show besides the new one."""
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    now = timezone.now()
    older = make_batch(
        rows=40,
        name="Product descriptions",
        workflow=make_workflow(name="Copywriter"),
        status=BatchStatus.FINISHED,
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=2, minutes=48),
    )
    Execution.objects.filter(batch=older).update(status=ExecutionStatus.SUCCEEDED, total_tokens=120)
    Execution.objects.filter(batch=older, index__lt=3).update(
        status=ExecutionStatus.FAILED, error_type=ErrorType.TIMEOUT, error="read timeout after 300 s"
    )
    make_batch(rows=25, name="Support replies", workflow=make_workflow(name="Support agent"))
    return str(live_server.url)


def log_in(page: Page, site: str) -> None:
    page.goto(f"{site}/admin/login/?next=/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_have_text("Batches")


def upload(page: Page, workflow: Workflow, name: str, content: bytes, mime: str) -> None:
    page.select_option("#id_workflow", str(workflow.pk))
    page.set_input_files("#id_file", files=[{"name": name, "mimeType": mime, "buffer": content}])
    page.click("button[type=submit].primary")


def test_upload_run_fix_and_retry_in_a_real_browser(site, browser, fake):
    workflow = Workflow.objects.create(
        name="Summarise", base_url=fake.url, api_key="app-browser-test", concurrency=3, response_mode="streaming"
    )
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log_in(page, site)

    # New batch: upload a CSV, look at its preview.
    page.click("a.button.primary")
    expect(page.locator("h1")).to_have_text("New batch")
    shot(page, "new")
    upload(page, workflow, "requests.csv", CSV_PREVIEW.encode(), "text/csv")
    expect(page.locator("h1")).to_contain_text("Preview")
    expect(page.locator(".facts")).to_contain_text("UTF-8 with BOM")
    expect(page.locator(".facts")).to_contain_text("semicolon (;)")
    expect(page.locator("table.preview tbody tr")).to_have_count(5)
    expect(page.locator(".notice")).to_contain_text("declares no input variables")
    shot(page, "preview")

    # Another file (JSONL keeps the fault directives' numbers), then import and start it.
    page.click("text=Choose another file")
    jsonl = "".join(json.dumps(row) + "\n" for row in JSONL_ROWS).encode()
    upload(page, workflow, "requests.jsonl", jsonl, "application/x-ndjson")
    page.fill("#id_name", "Weekly requests")
    page.fill("#id_concurrency", "2")
    page.click("button[type=submit].primary")
    expect(page.locator(".messages")).to_contain_text("Imported 8 rows.")
    batch = BatchTask.objects.get(name="Weekly requests")
    assert batch.status == BatchStatus.RUNNING

    with BackgroundRunner():
        # The detail page polls progress.json and reloads itself when the batch finishes.
        expect(page.locator("[data-field=percent]")).to_have_text("100", timeout=TIMEOUT_MS)
        expect(page.locator("h1 .status")).to_have_text("Finished", timeout=TIMEOUT_MS)
        expect(page.locator(".stat-failed .value")).to_have_text("3")
        expect(page.locator(".stat-succeeded .value")).to_have_text("5")
        expect(page.locator("#error-chart li")).to_have_count(1)
        expect(page.locator("#error-chart")).to_contain_text("Invalid input")
        shot(page, "detail")

        # The failures: open one row, fix its inputs and retry it.
        page.click("text=All failures")
        expect(page.locator("table.failures tbody tr")).to_have_count(3)
        expect(page.locator("table.failures")).to_contain_text("invalid_input")
        shot(page, "failures")
        page.click("table.failures tbody tr:first-child td:nth-child(2) a")
        expect(page.locator("h1")).to_contain_text("Row 2")  # the second row of the file (index 1)
        fixed = {"text": "Translate the product page (fixed)", "_fault": "", "_fault_times": 0}
        page.fill("#id_inputs", json.dumps(fixed, indent=2))
        shot(page, "execution")
        page.click("text=Save and retry")
        expect(page.locator(".messages")).to_contain_text("Execution queued for retry")
        row = batch.executions.get(index=1)
        wait_until(lambda: Execution.objects.get(pk=row.pk).status == ExecutionStatus.SUCCEEDED)
        page.reload()
        expect(page.locator("h1 .status")).to_have_text("Succeeded")
        expect(page.locator("table.attempts tbody")).to_contain_text("Manual")
        assert Execution.objects.get(pk=row.pk).inputs == fixed

        # Retry one more from the failures page (fetch, no reload), then all the rest.
        page.goto(f"{site}/batches/{batch.pk}/failures/")
        expect(page.locator("table.failures tbody tr")).to_have_count(2)
        page.click("table.failures tbody tr:first-child button[name=one]")
        expect(page.locator(".messages")).to_contain_text("Retrying 1 failed execution.")
        expect(page.locator("table.failures tbody tr.retried")).to_have_count(1)
        wait_until(lambda: batch.executions.failed().count() == 1)
        page.reload()
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.click("button[value=all]")  # asks first, like Cancel
        expect(page.locator(".messages")).to_contain_text("Retrying 1 failed execution.")
        assert asked == ["Retry every failed row of this batch? They are sent to the app again."]
        wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED)

    assert counts(batch) == {"pending": 0, "running": 0, "succeeded": 8, "failed": 0, "cancelled": 0}
    page.goto(f"{site}/batches/{batch.pk}/")
    expect(page.locator(".stat-failed .value")).to_have_text("0")
    expect(page.locator(".stat-succeeded .value")).to_have_text("8")
    page.goto(f"{site}/")
    expect(page.locator("table.batches tbody tr")).to_have_count(3)
    shot(page, "list")

    # The same site in Simplified Chinese, as a browser set to Chinese asks for it.
    chinese = browser.new_context(
        viewport=VIEWPORT,
        locale="zh-CN",
        extra_http_headers={"Accept-Language": "zh-Hans"},
        storage_state=context.storage_state(),
    )
    page = chinese.new_page()
    page.goto(f"{site}/")
    expect(page.locator("h1")).to_have_text("批次")
    expect(page.locator("table.batches thead")).to_contain_text("进度")
    shot(page, "list-zh-hans")
    page.goto(f"{site}/batches/{batch.pk}/")
    expect(page.locator("h1 .status")).to_have_text("已完成")
    chinese.close()
    context.close()


UPLOADS = [
    ("rows.csv", "text/csv", "text,lang\nhello,en\n你好,zh\n".encode()),
    (
        "rows.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        xlsx_bytes([["text", "lang"], ["hello", "en"], ["你好", "zh"]]),
    ),
    (
        "rows.jsonl",
        "application/x-ndjson",
        '{"text": "hello", "lang": "en"}\n{"text": "你好", "lang": "zh"}\n'.encode(),
    ),
]


def test_every_format_the_command_line_accepts_uploads_in_a_real_browser(site, browser):
    workflow = Workflow.objects.create(name="Formats", base_url="http://127.0.0.1:9/v1", api_key="app-browser-test")
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log_in(page, site)

    for name, mime, content in UPLOADS:
        page.goto(f"{site}/batches/new/")
        upload(page, workflow, name, content, mime)
        expect(page.locator("h1")).to_contain_text("Preview")
        expect(page.locator("table.preview tbody tr")).to_have_count(2)
        expect(page.locator("table.preview tbody")).to_contain_text("你好")
        page.fill("#id_name", f"upload {name}")
        page.uncheck("#id_start")
        page.click("button[type=submit].primary")
        expect(page.locator(".messages")).to_contain_text("Imported 2 rows.")

    for name, _, _ in UPLOADS:
        batch = BatchTask.objects.get(name=f"upload {name}")
        assert [e.inputs for e in batch.executions.order_by("index")] == [
            {"text": "hello", "lang": "en"},
            {"text": "你好", "lang": "zh"},
        ]
    context.close()


def test_the_pages_keep_to_their_content_security_policy_in_a_real_browser(site, browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)
    log_in(page, site)
    older = BatchTask.objects.get(name="Product descriptions")

    for path in ["/", f"/batches/{older.pk}/", f"/batches/{older.pk}/failures/", "/batches/new/", "/admin/",
                 "/admin/batches/batchtask/", f"/admin/batches/batchtask/{older.pk}/change/"]:  # fmt: skip
        response = page.goto(f"{site}{path}")
        assert response is not None and "script-src 'self'" in response.headers.get("content-security-policy", "")
        expect(page.locator("body")).to_be_visible()

    page.goto(f"{site}/batches/{older.pk}/")
    succeeded = page.locator("[data-segment=succeeded]").evaluate("el => el.getBoundingClientRect().width")
    error_bar = page.locator("#error-chart .chart-bar span").evaluate("el => el.getBoundingClientRect().width")
    assert succeeded > 100 and error_bar > 10  # the widths came through batches.js, not style attributes
    assert violations == []
    context.close()
