"""The client (batches.dify.client) against a hostile or broken upstream: every answer ends as a classified
CallResult, in time, without the API key.

Each test starts its own small server on 127.0.0.1 (tests/dify/upstreams.py: aiohttp, or bare asyncio TCP) in a
thread of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from tests.dify.upstreams import (
    API_KEY,
    CAP,
    STARTED,
    TRANSPORTS,
    Handler,
    answer,
    app_for,
    assert_failed,
    assert_no_key,
    call,
    event,
    raw_upstream,
    sse,
    upstream,
)

# ----------------------------------------------------------------------------------------------- size


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_over_the_size_cap_is_a_bad_response(transport: str) -> None:
    body = json.dumps({"data": {"status": "succeeded", "outputs": {"x": "y" * (2 * CAP)}}}).encode()
    with upstream(answer(body)) as url:
        result, _ = call(app_for(url), transport)

    assert_failed(result, "bad_response")
    assert "larger than" in result.error


def test_the_size_cap_counts_what_is_kept_not_node_events_streaming_past() -> None:
    # A long-text run: Dify streams the text in node events several times over, untruncated.
    text = "t" * (CAP // 2)
    node = event({"event": "node_finished", "task_id": "t1", "data": {"inputs": {"x": text}, "outputs": {"x": text}}})
    finished = {"status": "succeeded", "outputs": {"x": text}}
    done = event({"event": "workflow_finished", "task_id": "t1", "data": finished})
    with upstream(sse(STARTED, node, node, node, done)) as url:
        result, _ = call(app_for(url, "streaming"))
    assert result.ok, result.error
    assert result.outputs == {"x": text}


def test_a_kept_answer_over_the_size_cap_is_a_bad_response() -> None:
    chunk = event({"event": "message", "task_id": "t1", "message_id": "m", "answer": "a" * (CAP // 4)})
    with upstream(sse(chunk, chunk, chunk, chunk, chunk, event({"event": "message_end", "task_id": "t1"}))) as url:
        result, _ = call(app_for(url, "streaming", mode="completion"))
    assert_failed(result, "bad_response")
    assert "larger than" in result.error


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_that_never_ends_fast_hits_the_size_cap(transport: str) -> None:
    frame = event({"event": "text_chunk", "data": {"text": "z" * 1000}})
    with upstream(sse(STARTED, forever=frame)) as url:
        result, _ = call(app_for(url, "streaming"), transport)

    assert_failed(result, "bad_response")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_endless_stream_line_hits_the_size_cap_quickly(transport: str) -> None:
    with upstream(sse(STARTED, b"data: ", forever=b"a" * 65536)) as url:
        result, seconds = call(app_for(url, "streaming"), transport, cap=8 * 1024 * 1024)

    assert_failed(result, "bad_response")
    assert seconds < 5


def test_a_gzip_bomb_is_cut_at_the_size_cap() -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    with upstream(answer(bomb, headers={"Content-Encoding": "gzip"})) as url:
        result, seconds = call(app_for(url))

    assert_failed(result, "bad_response")
    assert seconds < 5


# ----------------------------------------------------------------------------------------------- time


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_endless_slow_stream_ends_at_the_total_timeout(transport: str) -> None:
    with upstream(sse(STARTED, forever=b"event: ping\n\n", every=0.05)) as url:
        result, seconds = call(app_for(url, "streaming", timeout=1), transport)

    assert_failed(result, "timeout")
    assert seconds < 3


async def accept_and_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    await asyncio.sleep(3600)


async def headers_then_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(3600)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("server", [accept_and_wait, headers_then_nothing])
def test_a_server_that_never_answers_is_a_timeout(transport: str, server: Any) -> None:
    with raw_upstream(server) as url:
        result, seconds = call(app_for(url, timeout=1), transport)

    assert_failed(result, "timeout")
    assert seconds < 3


# ----------------------------------------------------------------------------------------------- encoding and shape


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("response_mode", "handler"),
    [
        ("blocking", answer(b'{"data": {"status": "succeeded", "outputs": {"x": "\xff\xfe"}}}')),
        ("blocking", answer(b'{"data": {"status": "succeeded", "outputs": {"x": "\xed\xa0\x80"}}}')),  # a surrogate
        ("streaming", sse(STARTED, b'data: {"event": "workflow_finished", "data": {"text": "\xc3"}}\n\n')),
        ("streaming", sse(STARTED, b"event: \xff\xff\ndata: {}\n\n")),
    ],
)
def test_invalid_utf8_is_a_bad_response(transport: str, response_mode: str, handler: Handler) -> None:
    with upstream(handler) as url:
        result, _ = call(app_for(url, response_mode), transport)

    assert_failed(result, "bad_response")


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        ("workflow", b"[1, 2, 3]"),
        ("workflow", b'"just a string"'),
        ("workflow", b"null"),
        ("workflow", b"{}"),
        ("workflow", b'{"data": []}'),
        ("workflow", b'{"data": "succeeded"}'),
        ("workflow", b'{"data": {"status": ["succeeded"]}}'),
        ("workflow", b'{"data": {"status": "succeeded", "outputs": "{not json"}}'),
        ("workflow", b'{"data": {"status": "succeeded", "outputs": {"x": NaN}}}'),
        ("workflow", b'{"data": {"status": "succeeded", "outputs": {"x": 1e400}}}'),
        ("workflow", b'{"data": {"status": "succeeded", "outputs": {"x": "\\ud800"}}}'),
        ("workflow", b"[" * 100_000 + b"]" * 100_000),
        ("workflow", b"<html><title>200 OK but not JSON</title></html>"),
        ("completion", b'{"answer": 42}'),
        ("completion", b'{"event": "message"}'),
        ("chat", b"[]"),
    ],
)
def test_json_of_the_wrong_shape_is_a_bad_response(mode: str, body: bytes) -> None:
    with upstream(answer(body)) as url:
        result, _ = call(app_for(url, mode=mode))

    assert_failed(result, "bad_response")


@pytest.mark.parametrize(
    "frame",
    [
        b"data: [1, 2]\n\n",
        b'data: "text"\n\n',
        b"data: {not json\n\n",
        b'data: {"event": "workflow_finished", "data": "done"}\n\n',
        b'data: {"event": "workflow_finished", "data": {"status": "exploded"}}\n\n',
        b'data: {"event": "workflow_finished", "data": {"status": "succeeded", "outputs": {"n": Infinity}}}\n\n',
    ],
)
def test_stream_events_of_the_wrong_shape_are_a_bad_response(frame: bytes) -> None:
    with upstream(sse(STARTED, frame)) as url:
        result, _ = call(app_for(url, "streaming"))

    assert_failed(result, "bad_response")


def test_odd_counts_and_ids_are_made_storable_rather_than_paid_for_twice() -> None:
    data = {"status": "succeeded", "outputs": {"x": "nul \u0000 ok"}, "total_tokens": -5, "elapsed_time": "fast"}
    body = json.dumps({"workflow_run_id": "r" * 500, "task_id": ["t"], "data": data}).encode()
    with upstream(answer(body)) as url:
        result, _ = call(app_for(url))

    assert result.ok and result.outputs == {"x": "nul \u0000 ok"}
    assert (result.total_tokens, result.elapsed) == (0, None)
    assert len(result.workflow_run_id) == 64 and result.task_id == "['t']"


def test_a_huge_token_count_is_capped_to_what_the_column_holds() -> None:
    body = json.dumps({"data": {"status": "succeeded", "outputs": {}, "total_tokens": 10**30}}).encode()
    with upstream(answer(body)) as url:
        result, _ = call(app_for(url))

    assert result.ok and result.total_tokens == 2**31 - 1


def test_a_header_too_large_is_a_bad_response() -> None:
    with upstream(answer(b"{}", headers={"X-Padding": "p" * 20_000})) as url:
        result, _ = call(app_for(url))

    assert_failed(result, "bad_response")


# ----------------------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(transport: str, status: int) -> None:
    visited: list[str] = []

    async def target(request: web.Request) -> web.StreamResponse:
        visited.append(request.path)
        return web.json_response({"data": {"status": "succeeded", "outputs": {"stolen": True}}})

    with upstream(target) as elsewhere, upstream(answer(b"", status, headers={"Location": elsewhere + "/run"})) as url:
        result, _ = call(app_for(url), transport)

    assert_failed(result, "bad_response")
    assert "redirect" in result.error and visited == []


# ----------------------------------------------------------------------------------------------- the key


def echo_key(status: int) -> Handler:
    """Quotes the Authorization header back, cut so that a 100-character excerpt would end inside the key."""

    async def handle(request: web.Request) -> web.StreamResponse:
        text = "x" * 90 + request.headers.get("Authorization", "") + " trailing words"
        return web.Response(text=text, status=status, content_type="text/plain")

    return handle


async def echo_key_in_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(STARTED)
    message = f"bad key {request.headers['Authorization']}"
    await response.write(event({"event": "error", "code": "invalid_param", "message": message}))
    return response


async def echo_key_unparseable(request: web.Request) -> web.StreamResponse:
    return web.Response(text="y" * 95 + request.headers["Authorization"], content_type="application/json")


async def echo_key_in_header(request: web.Request) -> web.StreamResponse:
    return web.Response(text="{}", headers={"X-Echo": request.headers["Authorization"] * 400})


@pytest.mark.parametrize(
    ("handler", "response_mode", "error_type"),
    [
        (echo_key(401), "blocking", "auth"),
        (echo_key(500), "blocking", "upstream_error"),
        (echo_key(400), "blocking", "invalid_input"),
        (echo_key_unparseable, "blocking", "bad_response"),
        (echo_key_in_stream, "streaming", "invalid_input"),
        (echo_key_in_header, "blocking", "bad_response"),
    ],
)
def test_errors_and_logs_never_quote_the_api_key(
    caplog: pytest.LogCaptureFixture, handler: Handler, response_mode: str, error_type: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="batches")
    with upstream(handler) as url:
        result, _ = call(app_for(url, response_mode))

    assert_failed(result, error_type)
    assert_no_key(caplog.text)


def test_outputs_that_echo_the_key_are_masked() -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        data = {"status": "succeeded", "outputs": {"answer": f"your key is {key}", key: [key[:12] + "…"]}}
        return web.json_response({"workflow_run_id": "r1", "task_id": "t1", "data": data})

    with upstream(echo) as url:
        result, _ = call(app_for(url))

    assert result.ok
    assert API_KEY[:8] not in json.dumps(result.outputs)
    assert result.outputs == {"answer": "your key is ***", "***": ["***…"]}
