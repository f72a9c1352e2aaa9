"""The Dify client, against the fake Dify over real HTTP (both transports)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from batches.dify import (
    AppSettings,
    BadResponse,
    CallResult,
    DifyClient,
    InputVariable,
    SSEDecoder,
    StreamState,
    classify_http_error,
    fetch_parameters,
    one_line,
    parse_blocking,
    parse_input_form,
    parse_retry_after,
)
from tests.fakedify import FakeDify, free_port, running_fake_dify

T = TypeVar("T")
TRANSPORTS = ["aiohttp", "httpx"]
MODES = [
    (mode, response_mode) for mode in ("workflow", "completion", "chat") for response_mode in ("streaming", "blocking")
]
API_KEY = "app-very-secret-key"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDify]:
    with running_fake_dify("--ping-interval", "0.1") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDify) -> FakeDify:
    server.restore()
    return server


def app_for(
    fake: FakeDify | str, mode: str = "workflow", response_mode: str = "streaming", timeout: float = 10
) -> AppSettings:
    url = fake if isinstance(fake, str) else fake.url
    return AppSettings(mode=mode, base_url=url, api_key=API_KEY, response_mode=response_mode, timeout=timeout)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def call(app: AppSettings, inputs: dict[str, Any], transport: str = "aiohttp", **options: Any) -> CallResult:
    async with DifyClient(transport, **options) as client:
        return await client.run(app, inputs, user="tester")


def expected_outputs(mode: str, inputs: dict[str, Any]) -> dict[str, Any]:
    text = "echo: " + json.dumps(inputs, sort_keys=True, ensure_ascii=False)
    return {"echo": inputs, "text": text} if mode == "workflow" else {"answer": text}


# ----------------------------------------------------------------------------------------------- successes


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "response_mode"), MODES)
def test_a_call_succeeds_with_outputs_echoing_its_inputs(
    fake: FakeDify, transport: str, mode: str, response_mode: str
) -> None:
    started: list[tuple[str, str]] = []
    inputs = {"text": "héllo, 世界", "n": 2, "query": "why?"}

    async def go() -> CallResult:
        async with DifyClient(transport) as client:
            return await client.run(
                app_for(fake, mode, response_mode), inputs, user="u", on_started=lambda *ids: started.append(ids)
            )

    result = run(go())
    assert result.ok, result.error
    outputs = dict(result.outputs or {})
    outputs.pop("conversation_id", None)
    assert outputs == expected_outputs(mode, inputs)  # chat sends query apart; the fake echoes it back in
    assert result.error_type == ""
    assert result.total_tokens > 10
    assert result.task_id
    assert result.upstream_status == "succeeded"
    if mode == "workflow":
        assert result.workflow_run_id
    if response_mode == "streaming":
        assert started == [(result.workflow_run_id, result.stop_task_id or result.task_id)]
    else:
        assert started == []


def test_chat_outputs_carry_the_conversation_id(fake: FakeDify) -> None:
    result = run(call(app_for(fake, "chat"), {"query": "hi"}))
    assert result.ok
    assert result.outputs is not None and result.outputs["conversation_id"]


def test_a_chat_row_without_query_is_invalid_input_without_calling(fake: FakeDify) -> None:
    result = run(call(app_for(fake, "chat"), {"text": "x"}))
    assert (result.ok, result.error_type) == (False, "invalid_input")
    assert fake.stats()["calls"] == 0


def test_on_started_is_called_before_the_run_finishes(fake: FakeDify) -> None:
    seen: list[float] = []
    begin = time.monotonic()

    async def go() -> CallResult:
        async with DifyClient() as client:
            return await client.run(
                app_for(fake),
                {"_latency_ms": 500},
                user="u",
                on_started=lambda *_: seen.append(time.monotonic() - begin),
            )

    result = run(go())
    assert result.ok
    assert seen[0] < 0.4 < result.latency


# ----------------------------------------------------------------------------------------------- faults

FAULTS = [
    ("server_error", "upstream_error", 500),
    ("bad_gateway", "upstream_error", 502),
    ("rate_limit", "rate_limited", 429),
    ("too_many", "rate_limited", 429),
    ("reset", "connection", None),
    ("bad_json", "bad_response", 200),
    ("cut", "bad_response", 200),
    ("workflow_failed", "workflow_failed", None),
    ("invalid_param", "invalid_input", 400),
    ("app_unavailable", "app_error", 400),
    ("auth", "auth", 401),
    ("paused", "app_error", 200),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "response_mode"), MODES)
@pytest.mark.parametrize(("fault", "error_type", "http_status"), FAULTS)
def test_each_fault_becomes_its_error_type(
    fake: FakeDify, transport: str, mode: str, response_mode: str, fault: str, error_type: str, http_status: int | None
) -> None:
    result = run(call(app_for(fake, mode, response_mode), {"query": "q", "_fault": fault}, transport))
    assert (result.ok, result.error_type) == (False, error_type), result.error
    if http_status is not None:
        assert result.http_status == http_status
    assert result.error and "\n" not in result.error and len(result.error) <= 500
    assert API_KEY not in result.error


@pytest.mark.parametrize(("fault", "retry_after"), [("rate_limit", 1.0), ("too_many", None)])
def test_retry_after_is_read_from_429_answers(fake: FakeDify, fault: str, retry_after: float | None) -> None:
    result = run(call(app_for(fake), {"_fault": fault}))
    assert result.retry_after == retry_after


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_a_hanging_upstream_times_out_within_the_app_timeout(
    fake: FakeDify, transport: str, response_mode: str
) -> None:
    result = run(call(app_for(fake, response_mode=response_mode, timeout=0.5), {"_fault": "hang"}, transport))
    assert result.error_type == "timeout"
    assert 0.5 <= result.latency < 1.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_endless_stream_of_pings_times_out_but_keeps_the_run_id(fake: FakeDify, transport: str) -> None:
    result = run(call(app_for(fake, timeout=0.6), {"_latency_ms": 60_000}, transport))
    assert result.error_type == "timeout"
    assert result.workflow_run_id and result.task_id
    assert result.latency < 1.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_is_a_connection_error(transport: str) -> None:
    result = run(call(app_for(f"http://127.0.0.1:{free_port()}/v1"), {"a": 1}, transport))
    assert result.error_type == "connection"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("response_mode", ["streaming", "blocking"])
def test_an_answer_over_the_size_cap_is_a_bad_response(fake: FakeDify, transport: str, response_mode: str) -> None:
    app = app_for(fake, response_mode=response_mode)
    result = run(call(app, {"text": "x" * 5000}, transport, max_response_bytes=2000))
    assert result.error_type == "bad_response"
    assert "larger than" in result.error


def test_fault_times_fails_the_first_call_and_lets_the_retry_succeed(fake: FakeDify) -> None:
    inputs = {"text": "x", "_fault": "server_error", "_fault_times": 1}
    first, second = run(call(app_for(fake), inputs)), run(call(app_for(fake), inputs))
    assert (first.error_type, second.ok) == ("upstream_error", True)


# ----------------------------------------------------------------------------------------------- runs, stop, limits


async def _leave_mid_stream_then_poll(fake: FakeDify) -> tuple[CallResult, CallResult, CallResult]:
    async with DifyClient() as client:
        cut = await client.run(app_for(fake, timeout=0.3), {"text": "x", "_latency_ms": 800}, user="u")
        during = await client.get_workflow_run(app_for(fake), cut.workflow_run_id)
        await asyncio.sleep(0.8)
        after = await client.get_workflow_run(app_for(fake), cut.workflow_run_id)
    return cut, during, after


def test_a_run_the_client_left_mid_stream_finishes_and_can_be_fetched(fake: FakeDify) -> None:
    cut, during, after = run(_leave_mid_stream_then_poll(fake))
    assert cut.error_type == "timeout"
    assert (during.ok, during.upstream_status, during.error_type) == (False, "running", "")
    assert (after.ok, after.upstream_status) == (True, "succeeded")
    assert after.outputs == expected_outputs("workflow", {"text": "x", "_latency_ms": 800})
    assert fake.stats()["succeeded"] == 1


def test_fetching_an_unknown_run_is_an_app_error_with_status_404(fake: FakeDify) -> None:
    async def go() -> CallResult:
        async with DifyClient() as client:
            return await client.get_workflow_run(app_for(fake), "no-such-run")

    result = run(go())
    assert (result.ok, result.error_type, result.http_status) == (False, "app_error", 404)


def test_fetching_a_failed_run_reports_workflow_failed(fake: FakeDify) -> None:
    async def go() -> CallResult:
        async with DifyClient() as client:
            failed = await client.run(app_for(fake, response_mode="blocking"), {"_fault": "workflow_failed"}, user="u")
            return await client.get_workflow_run(app_for(fake), failed.workflow_run_id)

    result = run(go())
    assert (result.ok, result.error_type, result.upstream_status) == (False, "workflow_failed", "failed")


async def _start_then_stop(fake: FakeDify, mode: str) -> tuple[bool, CallResult]:
    app = app_for(fake, mode)
    async with DifyClient() as client:
        started: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        inputs = {"query": "q", "_latency_ms": 5000}
        task = asyncio.create_task(client.run(app, inputs, user="u", on_started=lambda *ids: started.put_nowait(ids)))
        _, task_id = await started.get()
        stopped = await client.stop(app, task_id, user="u")
        return stopped, await asyncio.wait_for(task, 3)


def test_stop_ends_a_streaming_workflow_run_as_failed_without_a_retry(fake: FakeDify) -> None:
    stopped, result = run(_start_then_stop(fake, "workflow"))
    assert stopped
    assert (result.ok, result.error_type, result.upstream_status) == (False, "workflow_failed", "stopped")
    assert result.final
    assert result.latency < 3


@pytest.mark.parametrize("mode", ["completion", "chat"])
def test_stop_ends_a_streaming_message_at_once(fake: FakeDify, mode: str) -> None:
    stopped, result = run(_start_then_stop(fake, mode))
    assert stopped
    assert result.latency < 3


def test_stop_returns_false_when_the_upstream_is_unreachable() -> None:
    async def go() -> bool:
        async with DifyClient() as client:
            return await client.stop(app_for(f"http://127.0.0.1:{free_port()}/v1"), "task", user="u")

    assert run(go()) is False


def test_rpm_limit_gives_rate_limited_with_retry_after(fake: FakeDify) -> None:
    fake.configure(rpm=2)
    results = [run(call(app_for(fake), {"i": i})) for i in range(3)]
    assert [result.ok for result in results] == [True, True, False]
    assert results[2].error_type == "rate_limited"
    assert results[2].retry_after is not None and 1 <= results[2].retry_after <= 60


async def _many(fake: FakeDify, count: int, transport: str, latency_ms: int = 300) -> list[CallResult]:
    async with DifyClient(transport) as client:
        calls = [client.run(app_for(fake), {"i": i, "_latency_ms": latency_ms}, user="u") for i in range(count)]
        return list(await asyncio.gather(*calls))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_max_active_limit_gives_rate_limited(fake: FakeDify, transport: str) -> None:
    fake.configure(max_active=4)
    results = run(_many(fake, 10, transport))
    assert sum(result.ok for result in results) == 4
    assert {result.error_type for result in results if not result.ok} == {"rate_limited"}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_twenty_concurrent_calls_are_all_in_flight_at_once(fake: FakeDify, transport: str) -> None:
    results = run(_many(fake, 20, transport))
    assert all(result.ok for result in results)
    stats = fake.stats()
    assert (stats["max_in_flight"], stats["succeeded"], stats["rows_paid_twice"]) == (20, 20, 0)


def test_a_row_run_twice_shows_as_paid_twice(fake: FakeDify) -> None:
    for _ in range(2):
        assert run(call(app_for(fake), {"text": "same"})).ok
    assert fake.stats()["rows_paid_twice"] == 1


# ----------------------------------------------------------------------------------------------- parameters


def test_fetch_parameters_reads_the_apps_variables() -> None:
    with running_fake_dify("--variables", "text:Text:required,lang:Language,notes::paragraph") as fake:
        variables = fetch_parameters(app_for(fake))
    assert variables == [
        InputVariable("text", "Text", required=True, max_length=256, default=""),
        InputVariable("lang", "Language", max_length=256, default=""),
        InputVariable("notes", "notes", type="paragraph", max_length=256, default=""),
    ]


def test_fetch_parameters_returns_none_when_the_app_is_unreachable() -> None:
    assert fetch_parameters(app_for(f"http://127.0.0.1:{free_port()}/v1"), timeout=1) is None


def test_parse_input_form_reads_every_item_type() -> None:
    form = [
        {"text-input": {"variable": "a", "label": "A", "required": True, "max_length": 48}},
        {"paragraph": {"variable": "b", "label": "B"}},
        {"select": {"variable": "c", "label": "C", "options": ["x", "y"]}},
        {"number": {"variable": "d", "label": "D"}},
        {"file": {"variable": "e", "label": "E"}},
        {"file-list": {"variable": "f", "label": "F"}},
        {"checkbox": {"variable": "g", "label": "G"}},
        {"json_object": {"variable": "h", "label": "H"}},
        {"external_data_tool": {"type": "api"}},
        "junk",
    ]
    variables = parse_input_form(form)
    assert [(v.variable, v.type) for v in variables] == [
        ("a", "text-input"),
        ("b", "paragraph"),
        ("c", "select"),
        ("d", "number"),
        ("e", "file"),
        ("f", "file-list"),
        ("g", "checkbox"),
        ("h", "json_object"),
    ]
    assert variables[0].required and variables[0].max_length == 48
    assert variables[2].options == ("x", "y")


# ----------------------------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error_type"),
    [
        (429, '{"code": "too_many_requests", "message": "m", "status": 429}', "application/json", "rate_limited"),
        (429, '{"code": "rate_limit_error"}', "application/json", "rate_limited"),
        (500, '{"code": "internal_server_error"}', "application/json", "upstream_error"),
        (502, "<html><title>502 Bad Gateway</title></html>", "text/html", "upstream_error"),
        (503, "", "text/plain", "upstream_error"),
        (504, b"<html>gateway</html>", "text/html; charset=utf-8", "upstream_error"),
        (400, '{"code": "invalid_param", "message": "text is required"}', "application/json", "invalid_input"),
        (413, "too big", "text/plain", "invalid_input"),
        (422, "{}", "application/json", "invalid_input"),
        (408, "", "text/plain", "timeout"),
        (400, '{"code": "app_unavailable"}', "application/json", "app_error"),
        (400, '{"code": "not_workflow_app"}', "application/json", "app_error"),
        (400, '{"code": "not_chat_app"}', "application/json", "app_error"),
        (400, '{"code": "not_completion_app"}', "application/json", "app_error"),
        (400, '{"code": "provider_not_initialize"}', "application/json", "app_error"),
        (400, '{"code": "provider_quota_exceeded"}', "application/json", "app_error"),
        (400, '{"code": "model_currently_not_support"}', "application/json", "app_error"),
        (404, '{"code": "not_found"}', "application/json", "app_error"),
        (404, "<html>Not Found</html>", "text/html", "app_error"),
        (400, '{"code": "completion_request_error"}', "application/json", "workflow_failed"),
        (400, '{"code": "workflow_request_error"}', "application/json", "workflow_failed"),
        (401, '{"code": "unauthorized"}', "application/json", "auth"),
        (403, "<html>Forbidden</html>", "text/html", "auth"),
        (301, "", "text/html", "bad_response"),
        (302, "", "text/plain", "bad_response"),
        (400, "not json {", "application/json", "invalid_input"),
    ],
)
def test_classify_http_error_maps_statuses_and_codes(
    status: int, body: str | bytes, content_type: str, error_type: str
) -> None:
    kind, message = classify_http_error(status, body, content_type)
    assert kind == error_type
    assert message.startswith(f"HTTP {status}")
    assert "\n" not in message


def test_classify_http_error_message_names_the_code_and_never_quotes_another_answer() -> None:
    assert classify_http_error(400, '{"code": "invalid_param", "message": "bad\\nthing"}', "application/json")[1] == (
        "HTTP 400 invalid_param: bad thing"
    )
    assert classify_http_error(502, "<html><title>502 Bad Gateway</title></html>", "text/html")[1] == (
        "HTTP 502: not a Dify answer"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("  ", None), ("1", 1.0), ("2.5", 2.5), ("-3", 0.0), ("soon", None)],
)
def test_parse_retry_after_reads_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_reads_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(later) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_one_line_hides_the_secret_and_keeps_500_chars() -> None:
    text = one_line(f"key {API_KEY}\nthen " + "x" * 1000, API_KEY)
    assert API_KEY not in text and "\n" not in text and len(text) == 500


STREAM = (
    b": comment\r\n"
    b'data: {"event": "workflow_started", "task_id": "t", "workflow_run_id": "r"}\r\n\r\n'
    b"event: ping\n\n"
    b'data: {"event": "text_chunk",\ndata: "data": {"text": "\xc3\xa9"}}\n\n'
    b'data: {"event": "workflow_finished"}\n\n'
)
EXPECTED_EVENTS = [
    ("message", '{"event": "workflow_started", "task_id": "t", "workflow_run_id": "r"}'),
    ("ping", ""),
    ("message", '{"event": "text_chunk",\n"data": {"text": "é"}}'),
    ("message", '{"event": "workflow_finished"}'),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 16, 64, len(STREAM)])
def test_sse_decoder_gives_the_same_events_however_the_stream_is_split(chunk_size: int) -> None:
    decoder = SSEDecoder()
    events = [event for i in range(0, len(STREAM), chunk_size) for event in decoder.feed(STREAM[i : i + chunk_size])]
    assert events + list(decoder.flush()) == EXPECTED_EVENTS


def test_sse_decoder_flushes_a_last_frame_without_a_blank_line() -> None:
    decoder = SSEDecoder()
    assert list(decoder.feed(b'data: {"a": 1}')) == []
    assert list(decoder.flush()) == [("message", '{"a": 1}')]


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
