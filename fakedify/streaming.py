"""A streaming run call's answer: Server-Sent Events as Dify sends them, pings while the run goes on, and the
faults that break a stream (`cut`: it ends early; `bad_json`: a frame that is not JSON)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from fakedify.run import WORKFLOW_ID, Run
from fakedify.wire import PING, SSE_HEADERS, frame


async def stream(request: web.Request, run: Run, ping_interval: float) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(_opening(run))
    if run.fault in ("cut", "bad_json"):
        if run.fault == "bad_json":
            await response.write(b"data: {not json at all\n\n")
        await response.write_eof()
        return response
    while not run.done.is_set():
        try:
            async with asyncio.timeout(ping_interval):
                await run.done.wait()
        except TimeoutError:
            await response.write(PING)
    await response.write(_closing(run))
    await response.write_eof()
    return response


async def silence(request: web.Request, seconds: float) -> web.StreamResponse:
    """Dify's answer to a streamed call whose inputs it refuses in its worker: one ping, then nothing until its
    queue gives up (dify-real case 07), and the stream ends without an event."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(PING)
    await asyncio.sleep(seconds)  # cancelled when the client goes away
    await response.write_eof()
    return response


def _opening(run: Run) -> bytes:
    if run.mode != "workflow":
        return frame(run.message_body("message", run.text[: len(run.text) // 2])) + PING
    base = {"task_id": run.task_id, "workflow_run_id": run.id}
    started = {"id": run.id, "workflow_id": WORKFLOW_ID, "sequence_number": 1, "created_at": run.created_at}
    node = {"id": str(uuid.uuid4()), "node_id": "start", "node_type": "start", "title": "Start", "index": 1}
    return (  # Dify relays workflow streams from its worker: the first thing sent is a ping
        PING
        + frame({"event": "workflow_started", **base, "data": started})
        + frame({"event": "node_started", **base, "data": node})
    )


def _closing(run: Run) -> bytes:
    if run.mode != "workflow":
        return _message_closing(run)
    base = {"task_id": run.task_id, "workflow_run_id": run.id}
    node = {"id": str(uuid.uuid4()), "node_id": "llm", "node_type": "llm", "title": "LLM", "index": 2}
    frames = [
        frame({"event": "node_finished", **base, "data": {"node_id": "start", "status": "succeeded"}}),
        frame({"event": "node_started", **base, "data": node}),
        frame({"event": "node_finished", **base, "data": {**node, "status": run.status, "error": run.error}}),
    ]
    if run.status == "paused":
        form = {"form_id": str(uuid.uuid4()), "node_id": "llm", "node_title": "Human Input", "actions": []}
        frames.append(frame({"event": "human_input_required", **base, "data": form}))
        paused = {"workflow_run_id": run.id, "paused_nodes": ["llm"], "outputs": {}, "status": "paused"}
        frames.append(frame({"event": "workflow_paused", **base, "data": paused}))
    else:
        frames.append(frame({"event": "workflow_finished", **base, "data": run.data()}))
    return b"".join(frames)


def _message_closing(run: Run) -> bytes:
    if run.status == "succeeded":
        half = len(run.text) // 2
        rest = frame(run.message_body("message", run.text[half:]))
        return rest + frame({**run.message_body("message_end"), "metadata": run.usage()})
    if run.status == "paused":
        return frame({"event": "human_input_required", "task_id": run.task_id, "message_id": run.message_id})
    if run.status == "stopped":  # Dify ends a stopped message stream like a finished one, answer so far
        return frame({**run.message_body("message_end"), "metadata": run.usage()})
    # Dify's `error` event: no task_id, the code and status of the same error over HTTP.
    error: dict[str, Any] = {"event": "error", "conversation_id": run.conversation_id or None}
    error.update(message_id=run.message_id, created_at=run.created_at, code="completion_request_error")
    return frame({**error, "message": run.error or run.status, "status": 400})
