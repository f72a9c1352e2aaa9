"""A hostile or broken upstream: every answer ends as a classified CallResult, in time, without the API key.

Each test starts its own small server on 127.0.0.1 (aiohttp, or bare asyncio TCP) in a thread of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp import web
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from batches.choices import BatchStatus, ExecutionStatus
from batches.dify.client import DifyClient
from batches.dify.hosts import host_allowed
from batches.dify.pages import fetch_parameters
from batches.dify.types import AppSettings, CallResult
from batches.models import Execution
from batches.runner.worker import Runner

API_KEY = "app-Hostile-Upstream-Key-9931"
TRANSPORTS = ["aiohttp", "httpx"]
CAP = 256 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Stop = Callable[[], Coroutine[Any, Any, None]]


# ----------------------------------------------------------------------------------------------- servers


@contextmanager
def serving(start: Callable[[], Coroutine[Any, Any, tuple[int, Stop]]]) -> Iterator[str]:
    """Run a server's event loop in a thread; yield the server's /v1 URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port, stop = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def upstream(handler: Handler) -> Iterator[str]:
    """An aiohttp server answering every request with `handler`."""

    async def start() -> tuple[int, Stop]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner.addresses[0][1], runner.cleanup

    with serving(start) as url:
        yield url


@contextmanager
def raw_upstream(on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Iterator[str]:
    """A bare TCP server: `on_connect` decides what, if anything, is answered."""

    connections: set[asyncio.Task[None]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await on_connect(reader, writer)
        finally:
            writer.close()

    async def start() -> tuple[int, Stop]:
        server = await asyncio.start_server(connected, "127.0.0.1", 0)

        async def stop() -> None:
            server.close()
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

        return server.sockets[0].getsockname()[1], stop

    with serving(start) as url:
        yield url


def answer(
    body: bytes, status: int = 200, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, headers={"Content-Type": content_type, **(headers or {})})

    return handle


def sse(*frames: bytes, forever: bytes = b"", every: float = 0.0) -> Handler:
    """An event stream: the frames, then `forever` repeated (every `every` s) until the client goes away."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for frame in frames:
            await response.write(frame)
        while forever:
            await response.write(forever)
            await asyncio.sleep(every)
        return response

    return handle


def event(data: Any) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


STARTED = event({"event": "workflow_started", "task_id": "t1", "workflow_run_id": "r1"})


# ----------------------------------------------------------------------------------------------- calls


def app_for(url: str, response_mode: str = "blocking", mode: str = "workflow", timeout: float = 5) -> AppSettings:
    return AppSettings(mode=mode, base_url=url, api_key=API_KEY, response_mode=response_mode, timeout=timeout)


def call(app: AppSettings, transport: str = "aiohttp", cap: int = CAP) -> tuple[CallResult, float]:
    """(result, seconds taken) of one call."""

    async def go() -> CallResult:
        async with DifyClient(transport, max_response_bytes=cap) as client:
            return await client.run(app, {"text": "x", "query": "q"}, user="hostile-test")

    began = time.monotonic()
    result = asyncio.run(go())
    return result, time.monotonic() - began


def assert_failed(result: CallResult, error_type: str) -> None:
    assert (result.ok, result.error_type) == (False, error_type), result.error
    assert_no_key(result.error)
    assert result.error and "\n" not in result.error and len(result.error) <= 500


def assert_no_key(text: str) -> None:
    """Not the key, nor any 8 characters of it (a message cut in the middle of the key)."""
    assert not any(API_KEY[i : i + 8] in text for i in range(len(API_KEY) - 7)), text


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


# ----------------------------------------------------------------------------------------------- parameters


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"user_input_form": [')
    while True:
        await response.write(b" ")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "handler",
    [
        answer(b"[" * 100_000 + b"]" * 100_000),
        answer(b'{"user_input_form": "none"}'),
        answer(b'{"user_input_form": [{"text-input": {"variable": "v", "options": 5, "max_length": 1e400}}]}'),
        answer(b'{"user_input_form": [' + b'{"a": 1},' * 200_000 + b"{}]}"),
        answer(b"\xff\xfe{}"),
        answer(b"", 302, headers={"Location": "http://127.0.0.1:9/v1/parameters"}),
        trickle,
    ],
)
def test_reading_the_apps_parameters_gives_up_quietly(caplog: pytest.LogCaptureFixture, handler: Handler) -> None:
    caplog.set_level(logging.DEBUG, logger="batches")
    began = time.monotonic()
    with upstream(handler) as url:
        variables = fetch_parameters(app_for(url), timeout=1)

    assert variables in (None, [])
    assert time.monotonic() - began < 4
    assert_no_key(caplog.text)


def test_a_parameter_item_of_odd_types_still_reads() -> None:
    body = b'{"user_input_form": [{"select": {"variable": "v", "label": 7, "options": 5, "max_length": "9"}}]}'
    with upstream(answer(body)) as url:
        variables = fetch_parameters(app_for(url), timeout=1)

    assert variables is not None and [(v.variable, v.label, v.options) for v in variables] == [("v", "7", ())]


# ----------------------------------------------------------------------------------------------- a runner


def test_a_runner_records_every_hostile_answer_and_finishes(make_workflow: Any, make_batch: Any) -> None:
    """Whatever the upstream says, each row ends in a state the database accepts, and the runner returns."""
    answers = [
        answer(json.dumps({"workflow_run_id": "r" * 300, "data": {"status": "succeeded", "outputs": {"x": "\u0000"}}})
               .encode()),
        answer(b'{"data": {"status": "succeeded", "outputs": {"x": 1e999}, "total_tokens": -1}}'),
        answer(b'{"data": {"status": "failed", "error": "nul \\u0000 and\\nnewline here"}}'),
        answer(b"\xff" * 100, 500, "text/html"),
        answer(b"{" * 50_000),
    ]  # fmt: skip

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await answers[int(body["inputs"]["text"].split()[-1])](request)

    with upstream(handle) as url:
        workflow = make_workflow(base_url=url, api_key=API_KEY, response_mode="blocking", timeout=5)
        batch = make_batch(rows=len(answers), workflow=workflow, status=BatchStatus.RUNNING, max_retries=0)
        Runner().run(seconds=20)

    rows = list(Execution.objects.filter(batch=batch).order_by("index"))
    assert [row.status for row in rows] == [ExecutionStatus.SUCCEEDED] + [ExecutionStatus.FAILED] * 4
    assert [row.error_type for row in rows[1:]] == ["bad_response", "workflow_failed", "upstream_error", "bad_response"]
    assert rows[0].outputs == {"x": "\u0000"} and len(rows[0].workflow_run_id) == 64
    assert all("\u0000" not in row.error and "\n" not in row.error for row in rows)


# ----------------------------------------------------------------------------------------------- allowed hosts


@pytest.mark.parametrize(
    ("url", "patterns", "allowed"),
    [
        ("https://api.dify.ai/v1", [], True),
        ("https://api.dify.ai/v1", ["api.dify.ai"], True),
        ("https://API.Dify.AI./v1", ["api.dify.ai"], True),
        ("https://api.dify.ai.evil.com/v1", ["api.dify.ai"], False),
        ("https://dify.internal:8443/v1", ["*.example.com", "dify.internal"], True),
        ("https://a.b.example.com/v1", ["*.example.com"], True),
        ("https://example.com/v1", ["*.example.com"], False),
        ("https://badexample.com/v1", ["*.example.com"], False),
        ("http://[::1]:5001/v1", ["[::1]"], True),
        ("http://127.0.0.1:5001/v1", ["localhost"], False),
        ("http://user@evil.com@api.dify.ai/v1", ["evil.com"], False),
        ("http://[::1/v1", ["*"], False),
        ("https://anything.at.all/v1", ["*"], True),
    ],
)
def test_host_allowed(url: str, patterns: list[str], allowed: bool) -> None:
    assert host_allowed(url, patterns) is allowed


def test_a_workflow_on_a_host_not_allowed_is_refused(settings: Any, make_workflow: Any) -> None:
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["api.dify.ai", "*.corp.example"]
    workflow = make_workflow()

    workflow.base_url = "https://dify.corp.example/v1"
    workflow.full_clean()
    workflow.base_url = "https://169.254.169.254/latest"
    with pytest.raises(ValidationError) as error:
        workflow.full_clean()

    assert list(error.value.message_dict) == ["base_url"]


def test_add_workflow_refuses_a_host_not_allowed(settings: Any, db: None) -> None:
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["api.dify.ai"]

    with pytest.raises(CommandError, match="base_url: This host is not allowed"):
        call_command("add_workflow", "wf", "--base-url", "http://10.0.0.1/v1", "--api-key", "app-k")


@pytest.mark.parametrize("url", ["ftp://api.dify.ai/v1", "file:///etc/passwd", "javascript:alert(1)"])
def test_a_base_url_must_be_http_or_https(make_workflow: Any, url: str) -> None:
    workflow = make_workflow()
    workflow.base_url = url

    with pytest.raises(ValidationError) as error:
        workflow.full_clean()

    assert "base_url" in error.value.message_dict
