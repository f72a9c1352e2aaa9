"""The run look-up before paying again (batches.runner.reconcile): only Dify's own answer about the run lets the row be
sent again.

A flapping Dify is never paid twice (issue 26): a runner in this process, the fake Dify behind a proxy that cuts and
refuses. A streamed call is cut after its run started; the retry's look-up of that run is refused; then Dify is back,
and its answer about the first run (succeeded) is recorded. Exactly one call is paid.
"""

import asyncio
import json
import threading
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from batches.choices import BatchStatus, ExecutionStatus, Trigger
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings
from batches.models import Attempt, Execution
from batches.runner import reconcile
from batches.runner.worker import Runner
from batches.services import results
from fakedify.harness import free_port, running_fake_dify
from tests.processes import DroppingProxy
from tests.replay import replaying

RUN_ID = "5a3c2b1e-0000-4000-8000-000000000001"


def app(url):
    return AppSettings(mode="workflow", base_url=url, api_key="app-lookup-key", timeout=5)


def look_up(url):
    async def ask():
        async with DifyClient() as client:
            return await reconcile.earlier_run(client, app(url), RUN_ID, poll_every=0.01)

    return asyncio.run(ask())


def answer(status, body, content_type="application/json"):
    return {"status": status, "headers": {"Content-Type": content_type}, "body_chunks": [body]}


def run_detail(status):
    data = {"id": RUN_ID, "status": status, "outputs": {}, "error": "boom", "created_at": 2_000_000_000}
    return answer(200, json.dumps(data))


def test_a_refused_look_up_is_the_tries_failure_and_keeps_the_run_id():
    found = look_up(f"http://127.0.0.1:{free_port()}/v1")

    assert found is not None and not found.ok
    assert (found.error_type, found.workflow_run_id) == ("connection", RUN_ID)


@pytest.mark.parametrize(
    ("case", "error_type"),
    [
        (answer(502, "<html><body>502 Bad Gateway</body></html>", "text/html"), "upstream_error"),
        (answer(429, json.dumps({"code": "too_many_requests", "message": "slow down", "status": 429})), "rate_limited"),
        (answer(200, "<html>a login page</html>", "text/html"), "bad_response"),
    ],
    ids=["gateway_502", "rate_limited", "html_200"],
)
def test_a_look_up_that_dify_did_not_answer_fails_the_try(case, error_type):
    with replaying(case, 0.01) as (url, _):
        found = look_up(url)

    assert found is not None and not found.ok
    assert (found.error_type, found.workflow_run_id) == (error_type, RUN_ID)


@pytest.mark.parametrize(
    "case",
    [
        answer(404, json.dumps({"code": "not_found", "message": "Workflow run not found.", "status": 404})),
        run_detail("failed"),
        run_detail("stopped"),
    ],
    ids=["not_found", "failed", "stopped"],
)
def test_only_dify_saying_the_run_ended_without_success_sends_the_row_again(case):
    with replaying(case, 0.01) as (url, _):
        assert look_up(url) is None


# --------------------------------------------------------------------------- a flapping Dify, through a runner

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
