"""The run calls: POST /v1/workflows/run, /v1/completion-messages and /v1/chat-messages, blocking or streaming.

A call is checked (fakedify/checks.py), limited (fakedify/limits.py), given its fault (fakedify/faults.py), then
starts a run (fakedify/state.py) and answers when it ends: here for blocking calls, in fakedify/streaming.py for
streams."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from fakedify import checks, streaming, wire
from fakedify.faults import RUN_FAULTS, immediate_fault
from fakedify.run import Run, row_key
from fakedify.state import FAKE, FakeDify


async def workflow_run(request: web.Request) -> web.StreamResponse:
    return await _run_call(request, "workflow")


async def completion_message(request: web.Request) -> web.StreamResponse:
    return await _run_call(request, "completion")


async def chat_message(request: web.Request) -> web.StreamResponse:
    return await _run_call(request, "chat")


async def _run_call(request: web.Request, mode: str) -> web.StreamResponse:
    stats = request.app[FAKE].stats
    stats.calls += 1
    stats.by_mode[mode] += 1
    started = time.monotonic()
    try:
        response = await _serve_call(request, request.app[FAKE], mode)
    finally:
        request.app[FAKE].call_log.record(started)
    stats.status_counts[str(response.status)] += 1
    return response


async def _serve_call(request: web.Request, fake: FakeDify, mode: str) -> web.StreamResponse:
    if fake.options.outage:  # the whole Dify is down: the proxy answers before anything is read
        fake.stats.faults[fake.options.outage] += 1
        return await immediate_fault(request, fake.options.outage)
    if not checks.authorized(request):
        return wire.unauthorized()
    body = await checks.read_body(request)
    if isinstance(body, web.Response):
        return body
    refusal = checks.invalid(body, mode, fake.options, uploads=fake.files.uploads)
    if isinstance(refusal, checks.SilentRefusal):
        return await streaming.silence(request, fake.options.refusal_silence)
    if refusal is None:  # not `or`: an aiohttp response is a mapping, and an empty one is falsy
        refusal = fake.limiter.refusal(fake.options, fake.stats)
    if refusal is not None:
        return refusal
    fault = fake.faults.pick(body["inputs"], row_key(body["inputs"], str(body.get("query") or "")))
    return await _in_flight(request, fake, mode, body, fault)


async def _in_flight(
    request: web.Request, fake: FakeDify, mode: str, body: dict[str, Any], fault: str | None
) -> web.StreamResponse:
    fake.stats.call_started()
    try:
        if fault:
            fake.stats.faults[fault] += 1
        if fault and fault not in RUN_FAULTS:
            return await immediate_fault(request, fault)
        run = fake.start_run(mode, body, fault)
        if body.get("response_mode") == "streaming":
            return await streaming.stream(request, run, fake.options.ping_interval)
        return await _blocking(run)
    finally:
        fake.stats.in_flight -= 1


async def _blocking(run: Run) -> web.Response:
    await run.done.wait()
    if run.fault in ("cut", "bad_json"):
        text = '{"workflow_run_id": "' + run.id + '", "data": {"status": "succ' if run.fault == "cut" else "oops"
        return web.Response(text=text, content_type="application/json")
    if run.mode == "workflow":
        return wire.blocking(200, {"workflow_run_id": run.id, "task_id": run.task_id, "data": run.data()})
    if run.status == "paused":
        return wire.blocking(200, {"event": "workflow_paused", "task_id": run.task_id, "data": {"status": "paused"}})
    if run.status != "succeeded":
        return wire.error(400, "completion_request_error", run.error or f"run {run.status}")
    body = run.message_body("message", run.text)
    return wire.blocking(200, {**body, "mode": run.mode, "metadata": run.usage()})
