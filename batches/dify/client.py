"""The one Dify client: `DifyClient` runs an app for a row, uploads a file, looks up a workflow run, stops a run, and
reads an app's small JSON documents (`/parameters`, `/info`) for the pages (`batches.dify.pages`).

`run` and `upload` never raise for upstream trouble: every failure becomes a `CallResult` with one of the error types of
`batches.choices.ErrorType`. Create the client inside a running event loop (workers are forked).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_aiohttp import AiohttpTransport

from batches.choices import ErrorType
from batches.db import strictjson
from batches.db.crypto import is_unreadable
from batches.dify import errors, hosts, sse
from batches.dify.answers import StreamState, mapping, parse_blocking, seconds, workflow_data
from batches.dify.hosts import UpstreamRefused
from batches.dify.redact import hidden_in, masked, one_line
from batches.dify.types import (
    MAX_PARAMETERS_BYTES,
    MAX_RESPONSE_BYTES,
    PATHS,
    STOP_PATHS,
    UNREADABLE_KEY_ERROR,
    AppSettings,
    BadResponse,
    CallResult,
    OnStarted,
)
from batches.dify.upload import MultipartFile

logger = logging.getLogger("batches.dify")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate authorities, loaded once per process (30 ms of CPU each time). A qcluster loads them before
    it forks its workers (apps.py), so a runner's first slice does not wait for them."""
    return httpx.create_ssl_context()


class DifyClient:
    """One HTTP connection pool for many concurrent calls; create it inside the running event loop."""

    def __init__(
        self, transport: str = "aiohttp", max_connections: int = 1000, max_response_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        pool: httpx.AsyncBaseTransport
        if transport == "aiohttp":
            pool = AiohttpTransport(verify=tls_context(), limits=limits)
        elif transport == "httpx":
            pool = httpx.AsyncHTTPTransport(verify=tls_context(), limits=limits)
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self.max_response_bytes = max_response_bytes
        self.streaming_apps: dict[tuple[str, str], AppSettings] = {}  # agent apps, which refuse blocking calls
        self._http = httpx.AsyncClient(transport=pool, follow_redirects=False)
        self._pool = pool
        self._default_headers = dict(self._http.headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> DifyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def run(
        self, app: AppSettings, inputs: dict[str, Any], *, user: str, on_started: OnStarted | None = None
    ) -> CallResult:
        """Run the app once for one row's inputs."""
        result = CallResult(ok=False)
        path = PATHS.get(app.mode)
        if path is None:
            return result.fail(ErrorType.APP_ERROR, f"unknown app mode {app.mode!r}")
        if is_unreadable(app.api_key):
            return result.fail(ErrorType.AUTH, UNREADABLE_KEY_ERROR)
        body: dict[str, Any] = {"inputs": dict(inputs), "response_mode": app.response_mode, "user": user}
        if app.mode == "chat":
            query = body["inputs"].pop("query", None)
            if query is None:
                return result.fail(ErrorType.INVALID_INPUT, "a chat app needs a 'query' input")
            body["query"] = str(query)
            body["auto_generate_name"] = False  # else Dify pays a second model call to name each conversation
        app = self.streaming_apps.get((app.base_url, app.api_key), app)
        state = StreamState(result, app.mode, on_started)
        result = await self._within_deadline(app, result, self._post(app, path, body, state))
        if not agent_refuses_blocking(app, result):
            return result
        # An agent-chat app answers only in streaming mode: switch, for this row and the next ones.
        logger.info("%s is an agent app: calling it in streaming mode", app.base_url)
        app = self.streaming_apps[(app.base_url, app.api_key)] = replace(app, response_mode="streaming")
        result = CallResult(ok=False)
        state = StreamState(result, app.mode, on_started)
        return await self._within_deadline(
            app, result, self._post(app, path, {**body, "response_mode": "streaming"}, state)
        )

    async def upload(self, app: AppSettings, path: Path, *, filename: str, user: str) -> CallResult:
        """Upload one file (POST /files/upload, streamed from disk); outputs: Dify's answer, whose `id` a row's
        inputs name. Never raises for upstream trouble, like `run`."""
        result = CallResult(ok=False)
        if is_unreadable(app.api_key):
            return result.fail(ErrorType.AUTH, UNREADABLE_KEY_ERROR)
        try:
            body = MultipartFile(path, filename, user)
        except OSError as exc:
            return result.fail(ErrorType.INVALID_INPUT, f"the file cannot be read: {exc.strerror}")
        return await self._within_deadline(app, result, self._post_file(app, result, body))

    async def get_workflow_run(self, app: AppSettings, run_id: str) -> CallResult:
        """How a workflow run ended (or that it is still `running`), from GET /workflows/run/{id}."""
        result = CallResult(ok=False, workflow_run_id=run_id)
        if is_unreadable(app.api_key):
            return result.fail(ErrorType.AUTH, UNREADABLE_KEY_ERROR)
        return await self._within_deadline(app, result, self._get_run(app, run_id, result))

    async def get_object(self, app: AppSettings, path: str) -> CallResult:
        """A small JSON document of the app (`/parameters`, `/info`) as the result's `outputs`; never raises."""
        result = CallResult(ok=False)
        if is_unreadable(app.api_key):
            return result.fail(ErrorType.AUTH, UNREADABLE_KEY_ERROR)
        return await self._within_deadline(app, result, self._get_object(app, path, result))

    async def stop(self, app: AppSettings, task_id: str, *, user: str) -> bool:
        """Ask Dify to stop a streaming run; True when it said so."""
        if app.mode not in STOP_PATHS or not task_id or is_unreadable(app.api_key):
            return False
        url = app.base_url.rstrip("/") + STOP_PATHS[app.mode].format(quote(task_id, safe=""))
        try:
            async with asyncio.timeout(min(app.timeout, 30)):
                await hosts.check_url_async(app.base_url)
                response = await self._http.post(
                    url,
                    json={"user": user},
                    headers=_headers(app),
                    timeout=_timeout(replace(app, timeout=min(app.timeout, 30), response_mode="blocking")),
                )
            return (
                response.status_code == 200
                and mapping(strictjson.value_of(response.content)).get("result") == "success"
            )
        except Exception as exc:  # stopping is best effort
            logger.info("stop %s failed: %s", task_id, one_line(repr(exc), app.api_key))
            return False

    async def _within_deadline(self, app: AppSettings, result: CallResult, call: Awaitable[None]) -> CallResult:
        """Await `call` within the app's total deadline, turning every failure into the result."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(app.timeout):
                await hosts.check_url_async(app.base_url)
                await call
        except UpstreamRefused as exc:
            result.fail(ErrorType.APP_ERROR, str(exc))
        except TimeoutError:
            result.fail(ErrorType.TIMEOUT, f"no complete answer within {app.timeout:g} s")
        except BadResponse as exc:
            result.fail(ErrorType.BAD_RESPONSE, one_line(exc.describe(app.api_key), app.api_key))
        except Exception as exc:
            kind, message = errors.public_failure(exc)  # one text for every way a port can fail to be Dify
            cause = one_line(errors.describe(exc), app.api_key)
            if kind == ErrorType.BAD_RESPONSE:  # no traceback: its messages may quote the answer, and so the key
                logger.warning("unexpected error calling %s: %s (%s)", app.base_url, cause, errors.where(exc))
            else:  # the exact cause, for operators only
                logger.info("call to %s failed: %s", app.base_url, cause)
            result.fail(kind, one_line(message, app.api_key))
        finally:
            if inspect.iscoroutine(call):
                call.close()  # not awaited when the address was refused
        result.latency = time.monotonic() - started
        result.error = one_line(result.error, app.api_key)
        if result.outputs and len(app.api_key) >= 6:  # an app may echo the key: outputs are shown and exported
            result.outputs = hidden_in(result.outputs, app.api_key)
        if not result.ok and result.error_type:
            logger.debug("call failed: %s %s", result.error_type, result.error)
        return result

    async def _post(self, app: AppSettings, path: str, body: dict[str, Any], state: StreamState) -> None:
        content = json.dumps(body, ensure_ascii=False, default=str).encode()
        url = app.base_url.rstrip("/") + path
        async with self._sent("POST", url, content, app) as r:
            result = state.result
            result.http_status = r.status_code
            if not await self._check_status(r, result, app):
                return
            if "text/event-stream" in r.headers.get("content-type", ""):
                await sse.consume(r, state, self.max_response_bytes)
            else:
                parse_blocking(result, await sse.read(r, self.max_response_bytes), app.mode)

    async def _post_file(self, app: AppSettings, result: CallResult, body: MultipartFile) -> None:
        url = app.base_url.rstrip("/") + "/files/upload"
        headers = {**_headers(app), **body.headers}
        async with self._http.stream("POST", url, content=body.chunks(), headers=headers, timeout=_timeout(app)) as r:
            result.http_status = r.status_code
            if not await self._check_status(r, result, app):
                return
            raw = await sse.read(r, self.max_response_bytes)
        answer = strictjson.object_of(raw)
        if answer is None or not isinstance(answer.get("id"), str) or not answer["id"]:
            raise BadResponse("upload answer without a file id", raw)
        result.ok, result.outputs, result.upstream_status = True, answer, "uploaded"

    @contextlib.asynccontextmanager
    async def _sent(self, method: str, url: str, content: bytes, app: AppSettings) -> AsyncIterator[httpx.Response]:
        """The answer to one request, straight from the connection pool: a run call needs nothing of what
        httpx's client adds (cookies, redirects, auth flows), which cost as much CPU as the transport itself."""
        headers = {**self._default_headers, **_headers(app)}
        timeout = {"timeout": _timeout(app).as_dict()}
        request = httpx.Request(method, url, content=content, headers=headers, extensions=timeout)
        response = await self._pool.handle_async_request(request)
        try:
            yield response
        finally:
            await response.aclose()

    async def _get_run(self, app: AppSettings, run_id: str, result: CallResult) -> None:
        data = await self._get_json(app, f"/workflows/run/{quote(run_id, safe='')}", result, self.max_response_bytes)
        if data is None:
            return
        result.run_created_at = seconds(data.get("created_at"))
        if data.get("status") == "running":
            result.upstream_status = "running"
            return
        workflow_data(result, data)

    async def _get_object(self, app: AppSettings, path: str, result: CallResult) -> None:
        data = await self._get_json(app, path, result, MAX_PARAMETERS_BYTES)
        if data is not None:
            result.ok, result.outputs = True, data

    async def _get_json(self, app: AppSettings, path: str, result: CallResult, limit: int) -> dict[str, Any] | None:
        """The JSON object a GET answers; None (the result failed) for an error answer."""
        url = app.base_url.rstrip("/") + path
        async with self._http.stream("GET", url, headers=_headers(app), timeout=_timeout(app)) as r:
            result.http_status = r.status_code
            if not await self._check_status(r, result, app):
                return None
            raw = await sse.read(r, limit)
        data = strictjson.object_of(raw)
        if data is None:
            raise BadResponse("unparseable JSON answer", raw)
        return data

    async def _check_status(self, response: httpx.Response, result: CallResult, app: AppSettings) -> bool:
        """True for a 2xx answer; otherwise classify it into the result."""
        if 200 <= response.status_code < 300:
            return True
        raw = masked(await sse.error_page(response), app.api_key)
        kind, message = errors.classify_http_error(response.status_code, raw, response.headers.get("content-type", ""))
        result.fail(kind, one_line(message, app.api_key), response.status_code)
        if kind == ErrorType.RATE_LIMITED:
            result.retry_after = errors.parse_retry_after(response.headers.get("retry-after"))
        return False


def _headers(app: AppSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.api_key}", "Content-Type": "application/json"}


def _timeout(app: AppSettings) -> httpx.Timeout:
    """A blocking answer is silent until the run ends: only the call's own limit applies. A stream pings every
    10 s, so a longer silence means it is dead; pings do not extend the call past its limit (`_within_deadline`).
    Connect gives up before the whole call, so a silent port ends like a refused one (CONNECT_FAILED)."""
    total = app.timeout
    read = total if app.response_mode == "blocking" else min(total, app.silence_timeout)
    return httpx.Timeout(connect=min(10.0, total * 0.9), read=read, write=10.0, pool=total)


def agent_refuses_blocking(app: AppSettings, result: CallResult) -> bool:
    return (
        app.mode == "chat" and app.response_mode == "blocking" and result.http_status == 400
        and "does not support blocking mode" in result.error
    )  # fmt: skip
