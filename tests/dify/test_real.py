"""Every recorded real Dify answer (tests/dify/recordings/runs, the project's copy), replayed over a
socket through the client and the engine's result recording: what the batch records must be what the recording
says a correct client records.

Pauses are replayed at DIFY_REPLAY_SCALE of their length (default 1/20) and the call's limits shrink by the same
factor, so a 65 s blocking answer against a 300 s limit and a 300 s held-open silence keep their meaning; with
DIFY_REPLAY_SCALE=1 the cases replay in real time (about six minutes).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult
from batches.models import Attempt, BatchTask, Execution, Workflow
from batches.runner import reconcile
from batches.services import claims, leases, results
from tests.replay import Replay, load, recordings, replaying

SCALE = float(os.environ.get("DIFY_REPLAY_SCALE", "0.05"))
CASES = recordings()
# The mode the batch tool is set to: what the request calls (case 38 calls a workflow app as a completion app).
MODES = {"/v1/workflows": "workflow", "/v1/completion-messages": "completion", "/v1/chat-messages": "chat"}
RUN_DETAIL = "/v1/workflows/run/"

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_recordings_are_there() -> None:
    assert len(CASES) >= 25, f"no recordings found in {CASES and CASES[0].parent}"


def app_for(case: dict[str, Any], url: str) -> AppSettings:
    expect = case["expect"]
    return AppSettings(
        mode=next(mode for prefix, mode in MODES.items() if case["request"]["path"].startswith(prefix)),
        base_url=url,
        api_key="app-recorded-key-0123",
        response_mode=(case["request"].get("json") or {}).get("response_mode", "streaming"),
        timeout=float(expect.get("with_timeout_s", 300)) * SCALE,
        silence_timeout=60 * SCALE,
    )


def batch_for(case: dict[str, Any], app: AppSettings) -> tuple[BatchTask, Execution]:
    workflow = Workflow.objects.create(
        name=case["case"], mode=app.mode, base_url=app.base_url, api_key=app.api_key,
        response_mode=app.response_mode, timeout=app.timeout,
    )  # fmt: skip
    batch = BatchTask.objects.create(
        name=case["case"], workflow=workflow, config=workflow.snapshot(), total=1, status=BatchStatus.RUNNING
    )
    body = case["request"].get("json") or {}
    inputs = dict(body.get("inputs") or {}) | ({"query": body["query"]} if "query" in body else {})
    return batch, Execution.objects.create(batch=batch, index=0, inputs=inputs)


async def call(app: AppSettings, claim: leases.Claim) -> CallResult:
    async with DifyClient() as client:
        return await client.run(app, claim.inputs, user=f"batch-{claim.batch_id}")


async def look_up(app: AppSettings, run_id: str) -> tuple[CallResult | None, CallResult]:
    async with DifyClient() as client:
        seen = await client.get_workflow_run(app, run_id)
        return await reconcile.earlier_run(client, app, run_id, poll_every=0.01), seen


def replay_run(case: dict[str, Any]) -> tuple[CallResult, Execution, BatchTask, Replay]:
    with replaying(case, SCALE) as (url, replay):
        app = app_for(case, url)
        batch, execution = batch_for(case, app)
        (claim,) = claims.claim(batch.pk, owner="replay", limit=1)
        result = asyncio.run(call(app, claim))
        results.record_results([(claim, result)])
    execution.refresh_from_db()
    batch.refresh_from_db()
    return result, execution, batch, replay


def check_recorded(expect: dict[str, Any], result: CallResult, execution: Execution, batch: BatchTask) -> None:
    if expect["ok"]:
        assert execution.status == ExecutionStatus.SUCCEEDED, (execution.error_type, execution.error)
    else:
        kinds = [expect["error_type"], *expect.get("alt_error_types", [])]
        assert execution.error_type in kinds, execution.error
        retried = execution.status == ExecutionStatus.PENDING
        assert retried == expect["retried"], (execution.status, execution.error_type, execution.error)
        assert expect.get("error_contains", "") in execution.error
        assert execution.outputs is None
    for name in ("outputs", "total_tokens", "workflow_run_id", "task_id", "http_status"):
        if name in expect:
            assert getattr(execution, name) == expect[name], name
    for name in ("upstream_status", "stop_task_id", "retry_after"):
        if name in expect:
            assert getattr(result, name) == expect[name], name
    assert (batch.status == BatchStatus.PAUSED) == expect["pauses_batch"], batch.status_reason
    if expect["pauses_batch"]:
        assert execution.error_type in batch.status_reason


# Calls (the stop answer is replayed by test_a_recorded_stop_answer_is_understood).
CALLS = [p for p in CASES if load(p)["request"]["method"] == "POST" and "stop_returns" not in load(p)["expect"]]


@pytest.mark.parametrize("path", CALLS, ids=lambda p: p.stem)
def test_a_recorded_answer_is_recorded_as_a_correct_client_would(path: Path) -> None:
    case = load(path)
    result, execution, batch, replay = replay_run(case)
    check_recorded(case["expect"], result, execution, batch)
    assert [r["path"] for r in replay.requests][:1] == [case["request"]["path"]]
    if case["expect"].get("must_not", "").startswith("record success or a run id"):
        assert not execution.workflow_run_id
    assert Attempt.objects.filter(execution=execution).count() == 1


@pytest.mark.parametrize(
    "path", [p for p in CASES if load(p)["request"]["path"].startswith(RUN_DETAIL)], ids=lambda p: p.stem
)
def test_a_recorded_run_lookup_is_understood(path: Path) -> None:
    case = load(path)
    expect = case["expect"]
    with replaying(case, SCALE) as (url, replay):
        found, seen = asyncio.run(look_up(app_for(case, url), case["request"]["path"].removeprefix(RUN_DETAIL)))
    if expect.get("ok"):
        assert found is not None and found.ok and found.outputs == expect["outputs"]
        assert found.upstream_status == expect["upstream_status"]
    else:  # run the row again: a run Dify does not know, or one past Dify's own execution limit (case 22)
        assert found is None
        assert seen.upstream_status == expect.get("upstream_status", seen.upstream_status)
        assert len(replay.requests) <= 2, "polled a run that cannot finish any more"


def test_a_recorded_stop_answer_is_understood() -> None:
    (case,) = [load(p) for p in CASES if "stop_returns" in load(p)["expect"]]
    task_id = case["request"]["path"].split("/")[-2]

    async def stop(app: AppSettings) -> bool:
        async with DifyClient() as client:
            return await client.stop(app, task_id, user="batch-17")

    with replaying(case, SCALE) as (url, replay):
        assert asyncio.run(stop(app_for(case, url))) is case["expect"]["stop_returns"]
    assert replay.requests[0]["path"] == case["request"]["path"]
    assert replay.requests[0]["json"] == {"user": "batch-17"}


def test_chat_requests_ask_dify_not_to_name_the_conversation() -> None:
    (case,) = [load(p) for p in CASES if p.stem.startswith("34_")]
    _, _, _, replay = replay_run(case)
    assert replay.requests[0]["json"]["auto_generate_name"] is False
