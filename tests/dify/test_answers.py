"""Reading stream events and blocking answers into a CallResult."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batches.dify.answers import StreamState, parse_blocking
from batches.dify.sse import SSEDecoder
from batches.dify.types import BadResponse, CallResult


def replay(mode: str, events: list[dict[str, Any]]) -> tuple[CallResult, bool]:
    """Feed events through the stream decoder and state as the client does: (result, finished)."""
    state = StreamState(CallResult(ok=False), mode, None)
    decoder = SSEDecoder()
    for event in events:
        for name, data in decoder.feed(f"data: {json.dumps(event)}\n\n".encode()):
            state.handle(name, data)
    return state.result, state.done


def test_message_replace_replaces_the_answer_so_far() -> None:
    result, done = replay(
        "completion",
        [
            {"event": "message", "task_id": "t", "message_id": "m", "answer": "bad "},
            {"event": "message_replace", "task_id": "t", "message_id": "m", "answer": "good"},
            {"event": "agent_message", "task_id": "t", "message_id": "m", "answer": "!"},
            {"event": "message_end", "task_id": "t", "message_id": "m", "metadata": {"usage": {"total_tokens": 7}}},
        ],
    )
    assert done and result.ok
    assert (result.outputs, result.total_tokens, result.task_id, result.stop_task_id) == (
        {"answer": "good!"},
        7,
        "m",
        "t",
    )


def test_an_advanced_chat_stream_keeps_its_workflow_run_id_and_ends_at_message_end() -> None:
    base = {"task_id": "t", "message_id": "m", "conversation_id": "c", "workflow_run_id": "r"}
    result, done = replay(
        "chat",
        [
            {"event": "workflow_started", **base, "data": {"id": "r"}},
            {"event": "message", **base, "answer": "hi"},
            {"event": "workflow_finished", **base, "data": {"status": "succeeded", "outputs": {"answer": "hi"}}},
            {"event": "message_end", **base, "metadata": {"usage": {"total_tokens": 3}}},
        ],
    )
    assert done and result.ok
    assert result.outputs == {"answer": "hi", "conversation_id": "c"}
    assert (result.workflow_run_id, result.task_id) == ("r", "m")


def error_event(code: str, message: str, status: int = 400) -> dict[str, Any]:
    return {"event": "error", "message_id": "m", "code": code, "message": message, "status": status}


def finished(status: str, error: str = "boom") -> dict[str, Any]:
    return {"event": "workflow_finished", "task_id": "t", "data": {"status": status, "error": error}}


@pytest.mark.parametrize(
    ("mode", "last_event", "error_type"),
    [
        ("workflow", error_event("invalid_param", "text is required in input form"), "invalid_input"),
        ("chat", error_event("provider_quota_exceeded", "Your quota has been exhausted."), "app_error"),
        ("chat", error_event("provider_not_initialize", "No valid model provider credentials found."), "app_error"),
        ("chat", error_event("model_currently_not_support", "Dify Hosted OpenAI not support"), "app_error"),
        ("chat", error_event("completion_request_error", "[openai] Error code: 429 rate limit"), "rate_limited"),
        ("chat", error_event("completion_request_error", "[openai] Error code: 503 overloaded"), "workflow_failed"),
        ("chat", error_event("invalid_param", "Too many requests. Please try again later."), "rate_limited"),
        ("chat", error_event("internal_server_error", "The server encountered an error.", 500), "upstream_error"),
        ("workflow", finished("failed"), "workflow_failed"),
        ("workflow", finished("failed", "[Errno 111] Connection refused"), "workflow_failed"),
        ("workflow", finished("failed", "PluginInvokeError: InvokeRateLimitError: rate limit reached"), "rate_limited"),
        ("workflow", finished("failed", "InvokeAuthorizationError: Incorrect API key provided"), "app_error"),
        ("workflow", finished("stopped", "Stopped by user."), "workflow_failed"),
        ("workflow", {"event": "workflow_paused", "task_id": "t", "data": {}}, "app_error"),
        ("chat", {"event": "human_input_required", "task_id": "t", "message_id": "m"}, "app_error"),
        ("chat", finished("failed"), "workflow_failed"),
    ],
)
def test_failing_stream_events_are_classified_like_the_same_error_over_http(
    mode: str, last_event: dict[str, Any], error_type: str
) -> None:
    result, done = replay(mode, [{"event": "node_started", "task_id": "t"}, last_event])
    assert done
    assert (result.ok, result.error_type) == (False, error_type), result.error
    assert result.final == (last_event.get("data", {}).get("status") == "stopped")


def test_message_file_events_are_kept_with_the_answer() -> None:
    file = {"event": "message_file", "id": "f1", "type": "image", "belongs_to": "assistant", "url": "https://x/f.png"}
    result, done = replay(
        "chat",
        [
            {"event": "agent_message", "task_id": "t", "message_id": "m", "answer": "Here it is"},
            {**file, "conversation_id": "c"},
            {"event": "message_end", "task_id": "t", "message_id": "m", "conversation_id": "c"},
        ],
    )
    assert done and result.ok
    assert result.outputs == {
        "answer": "Here it is",
        "conversation_id": "c",
        "files": [{"id": "f1", "type": "image", "belongs_to": "assistant", "url": "https://x/f.png"}],
    }


def test_unknown_stream_events_are_ignored() -> None:
    result, done = replay("workflow", [{"event": "tts_message", "task_id": "t"}, {"event": "iteration_next"}])
    assert not done and not result.ok and result.task_id == "t"


@pytest.mark.parametrize(
    ("status", "ok", "error_type"),
    [("succeeded", True, ""), ("partial-succeeded", True, ""), ("failed", False, "workflow_failed"),
     ("stopped", False, "workflow_failed"), ("paused", False, "app_error")],
)  # fmt: skip
def test_blocking_workflow_statuses(status: str, ok: bool, error_type: str) -> None:
    body = {"workflow_run_id": "r", "task_id": "t", "data": {"status": status, "outputs": {"x": 1}, "total_tokens": 5}}
    result = parse_blocking(CallResult(ok=False), json.dumps(body).encode(), "workflow")
    assert (result.ok, result.error_type, result.upstream_status) == (ok, error_type, status)
    assert result.outputs == ({"x": 1} if ok else None)


@pytest.mark.parametrize(
    ("mode", "raw"),
    [
        ("workflow", b"<html>oops</html>"),
        ("workflow", b"[1, 2]"),
        ("workflow", b'{"data": {"status": "running"}}'),
        ("workflow", b'{"task_id": "t"}'),
        ("completion", b'{"event": "message", "task_id": "t"}'),
    ],
)
def test_unusable_blocking_answers_are_bad_responses(mode: str, raw: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_blocking(CallResult(ok=False), raw, mode)
