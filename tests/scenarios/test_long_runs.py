"""Long runs are waited for and paid once: the call's limit is the workflow's timeout, and a retry after a cut call
first asks Dify how the earlier run ended.

`test_a_three_minute_blocking_run_succeeds_with_one_call` is the suite's single slow test (three minutes, idle):
the defect it guards against was a fixed 60 s read timeout, which only a call that really lasts longer can show.
The other tests scale the limits down (AppSettings.silence_timeout) and run in seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult
from batches.models import Execution
from batches.runner.worker import Runner
from batches.services import claims, results
from fakedify.harness import FakeDifyProcess, running_fake_dify

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDifyProcess]:
    with running_fake_dify("--ping-interval", "0.2") as server:
        yield server


def app_for(fake: FakeDifyProcess, response_mode: str, timeout: float, silence: float = 60) -> AppSettings:
    return AppSettings("workflow", fake.url, "app-key-long-runs", response_mode, timeout, silence_timeout=silence)


async def call(app: AppSettings, inputs: dict[str, Any]) -> CallResult:
    async with DifyClient() as client:
        return await client.run(app, inputs, user="u")


def run_row(make_batch: Any, app: AppSettings, inputs: dict[str, Any]) -> Execution:
    batch = make_batch(rows=1, status=BatchStatus.RUNNING)
    Execution.objects.filter(batch=batch).update(inputs=inputs)
    (claim,) = claims.claim(batch.pk, owner="test", limit=1)
    results.record_results([(claim, asyncio.run(call(app, claim.inputs)))])
    return Execution.objects.get(batch=batch)


@pytest.mark.skipif(os.environ.get("BATCHES_SKIP_SLOW") == "1", reason="BATCHES_SKIP_SLOW=1")
def test_a_three_minute_blocking_run_succeeds_with_one_call(fake: FakeDifyProcess, make_batch: Any) -> None:
    fake.restore()
    execution = run_row(make_batch, app_for(fake, "blocking", timeout=240), {"text": "x", "_latency_ms": 180_000})
    assert (execution.status, execution.error) == (ExecutionStatus.SUCCEEDED, "")
    assert fake.stats()["calls"] == 1


def test_a_blocking_call_waits_past_the_streams_silence_limit(fake: FakeDifyProcess, make_batch: Any) -> None:
    fake.restore()
    app = app_for(fake, "blocking", timeout=10, silence=0.5)
    execution = run_row(make_batch, app, {"text": "x", "_latency_ms": 2000})
    assert (execution.status, execution.error) == (ExecutionStatus.SUCCEEDED, "")
    assert fake.stats()["calls"] == 1


def test_a_stream_that_keeps_pinging_still_ends_at_the_workflow_timeout(fake: FakeDifyProcess) -> None:
    fake.restore()
    result = asyncio.run(call(app_for(fake, "streaming", timeout=1.5, silence=0.5), {"_latency_ms": 60_000}))
    assert (result.ok, result.error_type) == (False, "timeout")
    assert 1.4 < result.latency < 5


def test_a_stream_silent_past_its_limit_times_out(fake: FakeDifyProcess) -> None:
    fake.restore(ping_interval=30)
    try:
        result = asyncio.run(call(app_for(fake, "streaming", timeout=20, silence=0.5), {"_latency_ms": 60_000}))
    finally:
        fake.configure(ping_interval=0.2)
    assert (result.ok, result.error_type) == (False, "timeout")
    assert result.latency < 5


def test_a_retry_after_a_timeout_records_the_earlier_run_instead_of_paying_again(
    fake: FakeDifyProcess, make_batch: Any
) -> None:
    fake.restore()
    app = app_for(fake, "streaming", timeout=0.5)
    execution = run_row(make_batch, app, {"text": "x", "_latency_ms": 1500})
    assert (execution.status, execution.error_type) == (ExecutionStatus.PENDING, "timeout")
    assert execution.workflow_run_id
    Execution.objects.filter(pk=execution.pk).update(not_before=timezone.now() - timedelta(seconds=1))

    (claim,) = claims.claim(execution.batch_id, owner="test", limit=1)
    assert claim.resume_run_id == execution.workflow_run_id

    runner = Runner()

    async def retry() -> None:
        async with DifyClient() as client:
            await runner.call(client, replace_timeout(app, 10), claim)

    asyncio.run(retry())
    kind, _, result = runner.events.get_nowait()
    assert kind == "done"
    results.record_results([(claim, result)])
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.outputs["echo"] == {"text": "x", "_latency_ms": 1500}
    assert fake.stats()["calls"] == 1


def replace_timeout(app: AppSettings, timeout: float) -> AppSettings:
    return AppSettings(app.mode, app.base_url, app.api_key, app.response_mode, timeout, app.silence_timeout)
