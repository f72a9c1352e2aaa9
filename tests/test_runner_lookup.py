"""A flapping Dify is never paid twice: a runner in this process, the fake Dify behind a proxy that cuts and refuses.

The path (issue 26): a streamed call is cut after its run started; the retry's look-up of that run is refused; then
Dify is back, and its answer about the first run (succeeded) is recorded. Exactly one call is paid.
"""

import threading
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus, Trigger
from batches.models import Attempt, Execution
from batches.runner.worker import Runner
from batches.services import results
from fakedify.harness import running_fake_dify
from tests.processes import DroppingProxy

RUN_MS = 1000  # how long the first run takes inside Dify: it ends `succeeded` after its stream was cut


@pytest.fixture(scope="module")
def fake():
    with running_fake_dify("--ping-interval", "0.2") as server:
        yield server


@pytest.fixture
def proxy(fake):
    fake.restore()
    between = DroppingProxy(fake.port)
    yield between
    between.close()


@pytest.fixture
def row(make_workflow, make_batch, proxy, monkeypatch):
    """One streamed row; each failed try waits a minute, so each runner slice below makes exactly one try."""
    monkeypatch.setattr(results, "backoff_seconds", lambda *_: 60.0)
    workflow = make_workflow(base_url=f"http://127.0.0.1:{proxy.port}/v1", response_mode="streaming", timeout=5)
    batch = make_batch(rows=1, workflow=workflow, status=BatchStatus.RUNNING, concurrency=1, max_retries=3)
    Execution.objects.filter(batch=batch).update(inputs={"text": "flap", "_latency_ms": RUN_MS})
    return Execution.objects.get(batch=batch)


def next_try(seconds=1.0):
    Execution.objects.filter(status=ExecutionStatus.PENDING).update(not_before=None)
    Runner().run(seconds=seconds)


def tries(row):
    return list(Attempt.objects.filter(execution=row).order_by("number").values_list("error_type", "workflow_run_id"))


def test_a_cut_stream_whose_look_up_is_refused_is_recorded_from_dify_once_it_is_back(row, proxy, fake):
    threading.Timer(0.5, proxy.cut).start()  # the stream has announced its run by then; Dify goes away
    next_try(seconds=1.5)
    row.refresh_from_db()
    run_id, cut = row.workflow_run_id, row.error_type
    assert (row.status, bool(run_id), cut in ("bad_response", "connection")) == ("pending", True, True)

    next_try()  # the look-up is refused

    row.refresh_from_db()
    assert (row.status, row.error_type, row.workflow_run_id) == ("pending", "connection", run_id)
    proxy.reopen()
    next_try(seconds=3)  # Dify is back: it says the first run succeeded

    row.refresh_from_db()
    assert (row.status, row.outputs["echo"]["text"]) == (ExecutionStatus.SUCCEEDED, "flap")
    assert fake.stats()["calls"] == 1
    assert tries(row) == [(cut, run_id), ("connection", run_id), ("", run_id)]


def test_an_interrupted_row_whose_look_up_is_refused_is_recorded_from_dify_once_it_is_back(row, proxy, fake):
    body = {"inputs": row.inputs, "response_mode": "blocking", "user": "someone"}
    headers = {"Authorization": "Bearer app-secret-key"}
    run_id = httpx.post(f"{fake.url}/workflows/run", json=body, headers=headers, timeout=10).json()["workflow_run_id"]
    expired = timezone.now() - timedelta(seconds=1)
    Execution.objects.filter(pk=row.pk).update(  # its worker died mid-call, the run id stored
        status=ExecutionStatus.RUNNING,
        workflow_run_id=run_id,
        attempt_count=1,
        lease_owner="gone:1:1:x",
        lease_token="t",
        lease_expires_at=expired,
    )
    proxy.cut()

    next_try()  # the take-over's look-up is refused

    row.refresh_from_db()
    assert (row.status, row.error_type, row.workflow_run_id) == ("pending", "connection", run_id)
    proxy.reopen()
    next_try(seconds=3)

    row.refresh_from_db()
    assert (row.status, row.outputs["echo"]["text"]) == (ExecutionStatus.SUCCEEDED, "flap")
    assert fake.stats()["calls"] == 1
    assert Attempt.objects.filter(execution=row, trigger=Trigger.RECOVERY).count() == 1
