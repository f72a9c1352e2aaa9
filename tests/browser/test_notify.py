"""Notifications, history and cost in a real headless Chromium: a chat batch run against the fake Dify tells a
webhook receiver, its History and cost show on the batch page, Compare shows the deltas; screenshots under
docs/screenshots/."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, expect

from batches.choices import BatchStatus, ExecutionStatus
from batches.models import BatchTask, Execution, Notification
from batches.services import audit, lifecycle, notify
from fakedify.harness import running_fake_dify

# Its `browser` fixture too; the module skips itself without Chromium.
from tests.browser.test_staff_pages import PASSWORD, BackgroundRunner, browser, log_in, shot, wait_until  # noqa: F401
from tests.webhook_receiver import receiving


@pytest.fixture
def site(transactional_db: None, live_server: Any, django_user_model: Any) -> str:
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    return live_server.url


def test_a_batch_run_to_its_end_tells_the_receiver_and_shows_its_history_and_cost(
    site: str,
    browser: Browser,  # noqa: F811 - the fixture imported above
    make_workflow: Any,
    make_batch: Any,
    settings: Any,  # noqa: F811 - the fixture
) -> None:
    settings.BATCHES_SITE_URL = site
    with running_fake_dify("--latency-ms", "30") as fake, receiving() as receiver:
        workflow = make_workflow(
            name="Support replies", base_url=fake.url, mode="chat", webhook_url=receiver.url, webhook_secret="s3cret"
        )
        earlier = make_batch(rows=0, workflow=make_workflow(name="Support replies v1", mode="chat"), name="v1")
        batch = make_batch(rows=0, workflow=workflow, name="Support replies v2", status=BatchStatus.PENDING)
        for target in (earlier, batch):
            Execution.objects.bulk_create(
                Execution(batch=target, index=i, inputs={"query": f"Where is order {i}?"}) for i in range(6)
            )
        _finished(earlier)
        lifecycle.start_batch(batch.pk, actor=audit.Actor("admin", "page"))
        with BackgroundRunner():
            wait_until(lambda: BatchTask.objects.get(pk=batch.pk).status == BatchStatus.FINISHED)
        notify.deliver_due()

        page = browser.new_page(viewport={"width": 1024, "height": 900})
        log_in(page, site)
        page.goto(f"{site}/batches/{batch.pk}/")
        expect(page.locator("#history")).to_contain_text("Finished")
        expect(page.locator("#cost")).to_contain_text("USD")
        shot(page, "history")
        page.goto(f"{site}/workflows/{workflow.pk}/")
        expect(page.locator("#notifications")).to_contain_text("Delivered")
        shot(page, "notifications")
        page.goto(f"{site}/batches/{earlier.pk}/compare/{batch.pk}/")
        expect(page.locator("#costs")).to_contain_text("Latency p95")
        shot(page, "compare-costs")

    assert receiver.events() == ["batch.finished"] and receiver.received[0]["signed"]
    assert receiver.received[0]["body"]["batch"]["url"] == f"{site}/batches/{batch.pk}/"
    assert Notification.objects.get().status == "delivered"


def _finished(batch: BatchTask) -> None:
    now = timezone.now()
    BatchTask.objects.filter(pk=batch.pk).update(
        status=BatchStatus.FINISHED, started_at=now - timedelta(minutes=2), finished_at=now
    )
    for row in batch.executions.all():
        Execution.objects.filter(pk=row.pk).update(
            status=ExecutionStatus.SUCCEEDED,
            outputs={"answer": f"Order {row.index} left the warehouse yesterday."},
            total_tokens=20 + row.index,
            latency=0.05 + row.index / 100,
            price=Decimal("0.00004"),
            currency="USD",
        )
