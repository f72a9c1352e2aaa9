"""Small hostile upstreams for the client's tests: a server (aiohttp, or bare asyncio TCP) in a thread of its own
answering as the test says, and one call through the client against it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from batches.dify.client import DifyClient
from batches.dify.types import AppSettings, CallResult

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
