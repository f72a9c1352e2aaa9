"""Dify Service API client (workflow, completion and chat apps; streaming and blocking).

`DifyClient.run` never raises for upstream trouble: every failure becomes a `CallResult` with one of the
stable error types of design.md. Create the client inside a running event loop (workers are forked).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from batches import dify_errors, strictjson, upstream_hosts
from batches.crypto import is_unreadable
from batches.upstream_hosts import CONNECT_FAILED, UpstreamRefused
from batches.upstream_hosts import host_allowed as host_allowed  # moved there; kept importable from here

logger = logging.getLogger("batches.dify")

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
STREAM_FACTOR = 10  # a stream may carry this many times the answer cap in events the client does not keep
MAX_PARAMETERS_BYTES = 1024 * 1024
MAX_ERROR_CHARS = 500
SECRET_FRAGMENT = 8  # the start of a secret this long counts as the secret (a message cut inside it)
MAX_ID_CHARS = 64  # the id columns' width; Dify's ids are UUIDs
MAX_COUNT = 2**31 - 1  # the token columns' range
UNREADABLE_KEY_ERROR = (
    "the stored API key cannot be decrypted with BATCHES_ENCRYPTION_KEY: restore the key that encrypted it, "
    "or enter the API key again"
)
OK_STATUSES = frozenset({"succeeded", "partial-succeeded"})
PAUSE_EVENTS = frozenset({"workflow_paused", "human_input_required"})
# Events whose content the result keeps (the answer cap counts these only).
KEPT_EVENTS = frozenset(
    {"message", "agent_message", "message_replace", "message_file", "message_end", "workflow_finished", "error"}
)
PAUSED_REASON = "the run waits for a person (a Human Input node): an app that pauses cannot run in a batch"
PATHS = {"workflow": "/workflows/run", "completion": "/completion-messages", "chat": "/chat-messages"}
STOP_PATHS = {
    "workflow": "/workflows/tasks/{}/stop",
    "completion": "/completion-messages/{}/stop",
    "chat": "/chat-messages/{}/stop",
}

OnStarted = Callable[[str, str], None]


@dataclass(frozen=True)
class AppSettings:
    """What a call needs to reach one Dify app; built from a batch's snapshot plus the workflow's API key."""

    mode: str  # workflow | completion | chat
    base_url: str  # e.g. http://127.0.0.1:5001/v1
    api_key: str = field(repr=False)
    response_mode: str = "streaming"  # streaming | blocking
    timeout: float = 600.0  # total seconds for one call: the workflow's own limit, in both modes
    silence_timeout: float = 60.0  # streaming: longest silence (Dify pings every 10 s); blocking waits `timeout`


@dataclass(frozen=True)
class InputVariable:
    """One entry of the app's `user_input_form` (GET /v1/parameters)."""

    variable: str
    label: str
    required: bool = False
    type: str = "text-input"
    options: tuple[str, ...] = ()  # select
    max_length: int | None = None
    default: Any = None


@dataclass
class CallResult:
    """How one call ended. `error_type` is empty on success, else one of models.ErrorType's values."""

    ok: bool
    outputs: dict[str, Any] | None = None
    error_type: str = ""
    error: str = ""
    http_status: int | None = None
    workflow_run_id: str = ""
    task_id: str = ""  # task_id (workflow) or message_id (completion/chat)
    total_tokens: int = 0
    elapsed: float | None = None  # upstream's own elapsed_time
    upstream_status: str = ""  # e.g. succeeded, partial-succeeded, failed, stopped, running
    retry_after: float | None = None
    latency: float = 0.0  # measured by us, seconds
    stop_task_id: str = ""  # the stream's task_id, what the stop endpoint wants (all modes)
    run_created_at: float | None = None  # a looked-up run's created_at (epoch seconds)
    final: bool = False  # no automatic retry whatever the error type (a run stopped in Dify)

    def fail(self, error_type: str, error: str, http_status: int | None = None) -> CallResult:
        # Not cut yet: a cut could leave part of the API key, which DifyClient masks before cutting.
        self.ok, self.error_type, self.error = False, error_type, " ".join(error.split())
        if http_status is not None:
            self.http_status = http_status
        return self


class BadResponse(Exception):
    """The upstream answered something unusable (maps to `bad_response`); `excerpt`: the answer, for the message."""

    def __init__(self, message: str, excerpt: bytes | str = "") -> None:
        super().__init__(message)
        self.excerpt = excerpt

    def describe(self, secret: str = "", chars: int = 100) -> str:
        """The message; an answer that is not a Dify answer is never quoted (it may come from any internal service)."""
        return f"{self}: not a Dify answer" if self.excerpt else str(self)


# ----------------------------------------------------------------------------------------------- pure helpers


def one_line(text: str, secret: str = "") -> str:
    """Hide the secret, collapse whitespace and NULs, drop what UTF-8 cannot encode, cut to MAX_ERROR_CHARS."""
    if len(secret) >= 6:  # a shorter "key" is no secret, and masking it would garble every message
        text = hide(text, secret)
    text = " ".join(text.replace("\0", " ").split()).encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def hide(text: str, secret: str) -> str:
    """`text` with the secret replaced by ***, and also its beginning where someone else cut the secret short."""
    text = text.replace(secret, "***")
    head = secret[:SECRET_FRAGMENT]
    start = text.find(head)
    while start >= 0:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + "***" + text[end:]
        start = text.find(head, start + 3)
    return text


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_object(raw: bytes | str) -> dict[str, Any] | None:
    """The JSON object in `raw`, or None when it is not one (or could not be stored: see _json_value)."""
    value = _json_value(raw)
    return value if isinstance(value, dict) else None


def _json_value(raw: bytes | str) -> Any:
    """Strict JSON: UTF-8 only, no NaN or infinite numbers, no lone surrogates; None when `raw` is not that.

    What this accepts can be stored in a PostgreSQL json column and exported as UTF-8.
    """
    try:
        return strictjson.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A token count the database can hold; anything unreadable counts as 0 (it is no reason to run again)."""
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(number, 0), MAX_COUNT)


def _seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _error_body(body: bytes | str, content_type: str) -> tuple[str, str]:
    """(code, message) from a Dify JSON error body; ("", "not a Dify answer") for anything else, never its text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    data = _json_object(text) if "json" in content_type or text.lstrip().startswith("{") else None
    if data is not None and ("code" in data or "message" in data):
        return str(data.get("code") or ""), str(data.get("message") or data.get("error") or "")
    return "", "not a Dify answer" if text.strip() else ""


def classify_http_error(status: int, body: bytes | str, content_type: str) -> tuple[str, str]:
    """Map a non-2xx answer to (error_type, one-line message)."""
    code, message = _error_body(body, content_type)
    text = one_line(f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message.strip() else ""))
    kind = dify_errors.classify(status, code, message)
    return kind, text + " (redirect)" if 300 <= status < 400 else text


def classify_exception(exc: BaseException) -> str:
    """Error type for an exception raised while talking to the upstream."""
    # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout: judge by the original instead.
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError | OSError) else exc
    if isinstance(cause, BadResponse | aiohttp.ClientResponseError):  # the latter: a malformed answer (headers)
        return "bad_response"
    if isinstance(cause, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(
        cause, httpx.UnsupportedProtocol | httpx.InvalidURL | aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError
    ):
        return "app_error"
    if isinstance(cause, httpx.TransportError | aiohttp.ClientError | OSError):
        return "connection"
    return "bad_response"


class SSEDecoder:
    """Incremental Server-Sent Events decoder: feed bytes, get (event, data) for each complete frame."""

    def __init__(self, max_frame: int | None = None) -> None:
        self._partial: list[bytes] = []  # pieces of a line not ended yet (kept apart: joining each time is slow)
        self._event = ""
        self._data: list[bytes] = []
        self._max_frame = max_frame  # bytes one frame may hold (memory stays bounded whatever the stream)
        self._frame = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str]]:
        self._frame += len(chunk)
        if self._max_frame is not None and self._frame > self._max_frame:
            raise BadResponse(f"stream event larger than {self._max_frame} bytes")
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            self._partial.append(chunk)
            return
        lines[0] = b"".join([*self._partial, lines[0]])
        self._partial = [lines.pop()]
        for line in lines:
            yield from self._line(line.rstrip(b"\r"))

    def flush(self) -> Iterator[tuple[str, str]]:
        """A last frame not followed by a blank line (a stream that ends right after it)."""
        rest = b"".join(self._partial)
        self._partial = []
        if rest:
            yield from self._line(rest.rstrip(b"\r"))
        yield from self._line(b"")

    def _line(self, line: bytes) -> Iterator[tuple[str, str]]:
        if not line:
            if self._data or self._event:
                yield self._event or "message", _utf8(b"\n".join(self._data))
            self._event, self._data = "", []
            self._frame = sum(map(len, self._partial))
            return
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = _utf8(value)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadResponse(f"stream event is not valid UTF-8 (byte {exc.start})") from None


# ----------------------------------------------------------------------------------------------- answers


def _ids(result: CallResult, event: dict[str, Any], mode: str) -> None:
    """Remember the upstream ids an event carries."""
    if not result.workflow_run_id and event.get("workflow_run_id"):
        result.workflow_run_id = _id(event["workflow_run_id"])
    if not result.stop_task_id and event.get("task_id"):
        result.stop_task_id = _id(event["task_id"])
    own_id = event.get("task_id") if mode == "workflow" else event.get("message_id") or event.get("id")
    if not result.task_id and own_id:
        result.task_id = _id(own_id)


def _id(value: Any) -> str:
    return str(value)[:MAX_ID_CHARS]


def _outputs(value: Any) -> dict[str, Any]:
    """A run's outputs: an object, or a JSON text of one (anything else: no outputs)."""
    if isinstance(value, str) and value:
        value = _json_value(value)
        if value is None:
            raise BadResponse("outputs are a text that is not JSON")
    return value if isinstance(value, dict) else {}


def _workflow_data(result: CallResult, data: Any) -> CallResult:
    """Fill the result from a workflow run's `data` (blocking answer, workflow_finished, GET run)."""
    if not isinstance(data, dict):
        raise BadResponse("workflow answer without data")
    status = str(data.get("status") or "")
    result.upstream_status = status[:30]
    result.total_tokens = _count(data.get("total_tokens"))
    result.elapsed = _seconds(data.get("elapsed_time"))
    if status in OK_STATUSES:
        result.ok, result.outputs = True, _outputs(data.get("outputs"))
        return result
    error = str(data.get("error") or "no error message")
    if status == "paused":
        return result.fail("app_error", f"workflow paused: {PAUSED_REASON}")
    if status == "stopped":  # from Dify's console or past its execution time limit: running it again pays again
        result.final = True
        return result.fail("workflow_failed", f"workflow stopped: {error}")
    if status == "failed":
        return result.fail(dify_errors.classify_run_error(error), f"workflow failed: {error}")
    raise BadResponse(f"workflow answer with unexpected status {status!r}")


def _message_data(result: CallResult, body: dict[str, Any], mode: str, answer: str) -> CallResult:
    """Fill the result from a completion/chat answer (blocking body or message_end)."""
    usage = _mapping(_mapping(body.get("metadata")).get("usage"))
    result.total_tokens = _count(usage.get("total_tokens"))
    result.elapsed = _seconds(usage.get("latency"))
    result.ok, result.upstream_status, result.outputs = True, "succeeded", {"answer": answer}
    if mode == "chat" and body.get("conversation_id"):
        result.outputs["conversation_id"] = body["conversation_id"]
    return result


def parse_blocking(result: CallResult, raw: bytes, mode: str) -> CallResult:
    """Interpret a blocking answer's JSON body."""
    body = _json_object(raw)
    if body is None:
        raise BadResponse("unparseable JSON answer", raw)
    _ids(result, body, mode)
    if body.get("event") in PAUSE_EVENTS:
        result.upstream_status = "paused"
        return result.fail("app_error", f"workflow paused ({body['event']}): {PAUSED_REASON}")
    if mode == "workflow" or "data" in body:
        return _workflow_data(result, body.get("data"))
    if not isinstance(body.get("answer"), str):
        raise BadResponse("message answer without 'answer'")
    return _message_data(result, body, mode, body["answer"])


class StreamState:
    """Follows one SSE answer until its finishing event."""

    def __init__(self, result: CallResult, mode: str, on_started: OnStarted | None) -> None:
        self.result, self.mode, self.on_started = result, mode, on_started
        self.answer: list[str] = []
        self.done = False
        self.files: list[dict[str, Any]] = []
        self.max_kept: int | None = None  # bytes of answer text and finishing events the call may keep
        self.kept = 0

    def handle(self, sse_event: str, data: str) -> None:
        if sse_event == "ping" or not data.strip():
            return
        event = _json_object(data)
        if event is None:
            raise BadResponse("unparseable stream event", data)
        self._keep(str(event.get("event") or ""), event, data)
        self._started(event)
        self._dispatch(str(event.get("event") or ""), event)

    def _keep(self, name: str, event: dict[str, Any], data: str) -> None:
        if name not in KEPT_EVENTS or self.max_kept is None:
            return
        if name in ("message", "agent_message"):  # the text, not each chunk's ids
            self.kept += len(str(event.get("answer") or "").encode())
        elif name == "message_replace":
            self.kept = len(str(event.get("answer") or "").encode())
        else:
            self.kept += len(data.encode())
        if self.kept > self.max_kept:
            raise BadResponse(f"answer larger than {self.max_kept} bytes")

    def _started(self, event: dict[str, Any]) -> None:
        before = self.result.task_id
        _ids(self.result, event, self.mode)
        if self.on_started is not None and not before and self.result.task_id:
            # The stream's own task id: what the stop endpoint wants, in every mode.
            self.on_started(self.result.workflow_run_id, self.result.stop_task_id or self.result.task_id)

    def _dispatch(self, name: str, event: dict[str, Any]) -> None:
        result = self.result
        if name in ("message", "agent_message"):
            self.answer.append(str(event.get("answer") or ""))
        elif name == "message_replace":
            self.answer = [str(event.get("answer") or "")]
        elif name == "message_file":  # a file a tool made, part of the answer
            self.files.append({key: event[key] for key in ("id", "type", "belongs_to", "url") if key in event})
        elif name == "message_end":
            self.done = True
            _message_data(result, event, self.mode, "".join(self.answer))
            if self.files and result.outputs is not None:
                result.outputs["files"] = self.files
        elif name == "workflow_finished":
            _workflow_data(result, event.get("data"))
            self.done = self.mode == "workflow" or not result.ok
        elif name == "error":  # the same codes and statuses as an HTTP error answer, classified alike
            self.done = True
            code, message = str(event.get("code") or "error"), str(event.get("message") or "")
            status = event.get("status")
            result.fail(
                dify_errors.classify(status if isinstance(status, int) else 400, code, message),
                f"stream error {code}: {message}",
            )
        elif name in PAUSE_EVENTS:
            self.done = True
            result.upstream_status = "paused"
            result.fail("app_error", f"workflow paused ({name}): {PAUSED_REASON}")


# ----------------------------------------------------------------------------------------------- client


class DifyClient:
    """One HTTP connection pool for many concurrent calls; create it inside the running event loop."""

    def __init__(
        self, transport: str = "aiohttp", max_connections: int = 1000, max_response_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        pool: httpx.AsyncBaseTransport
        if transport == "aiohttp":
            pool = AiohttpTransport(limits=limits)
        elif transport == "httpx":
            pool = httpx.AsyncHTTPTransport(limits=limits)
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self.max_response_bytes = max_response_bytes
        self.streaming_apps: dict[tuple[str, str], AppSettings] = {}  # agent apps, which refuse blocking calls
        self._http = httpx.AsyncClient(transport=pool, follow_redirects=False)

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
            return result.fail("app_error", f"unknown app mode {app.mode!r}")
        if is_unreadable(app.api_key):
            return result.fail("auth", UNREADABLE_KEY_ERROR)
        body: dict[str, Any] = {"inputs": dict(inputs), "response_mode": app.response_mode, "user": user}
        if app.mode == "chat":
            query = body["inputs"].pop("query", None)
            if query is None:
                return result.fail("invalid_input", "a chat app needs a 'query' input")
            body["query"] = str(query)
            body["auto_generate_name"] = False  # else Dify pays a second model call to name each conversation
        app = self.streaming_apps.get((app.base_url, app.api_key), app)
        state = StreamState(result, app.mode, on_started)
        result = await self._guarded(app, result, self._post(app, path, body, state))
        if not agent_refuses_blocking(app, result):
            return result
        # An agent-chat app answers only in streaming mode: switch, for this row and the next ones.
        logger.info("%s is an agent app: calling it in streaming mode", app.base_url)
        app = self.streaming_apps[(app.base_url, app.api_key)] = replace(app, response_mode="streaming")
        result = CallResult(ok=False)
        state = StreamState(result, app.mode, on_started)
        return await self._guarded(app, result, self._post(app, path, {**body, "response_mode": "streaming"}, state))

    async def get_workflow_run(self, app: AppSettings, run_id: str) -> CallResult:
        """How a workflow run ended (or that it is still `running`), from GET /workflows/run/{id}."""
        result = CallResult(ok=False, workflow_run_id=run_id)
        if is_unreadable(app.api_key):
            return result.fail("auth", UNREADABLE_KEY_ERROR)
        return await self._guarded(app, result, self._get_run(app, run_id, result))

    async def stop(self, app: AppSettings, task_id: str, *, user: str) -> bool:
        """Ask Dify to stop a streaming run; True when it said so."""
        if app.mode not in STOP_PATHS or not task_id or is_unreadable(app.api_key):
            return False
        url = app.base_url.rstrip("/") + STOP_PATHS[app.mode].format(quote(task_id, safe=""))
        try:
            async with asyncio.timeout(min(app.timeout, 30)):
                await upstream_hosts.check_url_async(app.base_url)
                response = await self._http.post(
                    url,
                    json={"user": user},
                    headers=_headers(app),
                    timeout=_timeout(replace(app, timeout=min(app.timeout, 30), response_mode="blocking")),
                )
            return response.status_code == 200 and _mapping(_json_value(response.content)).get("result") == "success"
        except Exception as exc:  # stopping is best effort
            logger.info("stop %s failed: %s", task_id, one_line(repr(exc), app.api_key))
            return False

    async def _guarded(self, app: AppSettings, result: CallResult, call: Awaitable[None]) -> CallResult:
        """Await `call` within the app's total deadline, turning every failure into the result."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(app.timeout):
                await upstream_hosts.check_url_async(app.base_url)
                await call
        except UpstreamRefused as exc:
            result.fail("app_error", str(exc))
        except TimeoutError:
            result.fail("timeout", f"no complete answer within {app.timeout:g} s")
        except BadResponse as exc:
            result.fail("bad_response", one_line(exc.describe(app.api_key), app.api_key))
        except Exception as exc:
            kind = classify_exception(exc)
            message = one_line(_describe(exc), app.api_key)
            if _connect_failed(exc):  # one text: a refused port must not look different from a silent one
                kind, message = "connection", CONNECT_FAILED
            if kind == "bad_response":  # no traceback: its messages may quote the answer, and so the key
                logger.warning("unexpected error calling %s: %s (%s)", app.base_url, message, _where(exc))
            result.fail(kind, message)
        finally:
            if inspect.iscoroutine(call):
                call.close()  # not awaited when the address was refused
        result.latency = time.monotonic() - started
        result.error = one_line(result.error, app.api_key)
        if result.outputs and len(app.api_key) >= 6:  # an app may echo the key: outputs are shown and exported
            result.outputs = _hidden_in(result.outputs, app.api_key)
        if not result.ok and result.error_type:
            logger.debug("call failed: %s %s", result.error_type, result.error)
        return result

    async def _post(self, app: AppSettings, path: str, body: dict[str, Any], state: StreamState) -> None:
        content = json.dumps(body, ensure_ascii=False, default=str).encode()
        url = app.base_url.rstrip("/") + path
        headers = _headers(app)
        async with self._http.stream("POST", url, content=content, headers=headers, timeout=_timeout(app)) as r:
            result = state.result
            result.http_status = r.status_code
            if not await self._check_status(r, result, app):
                return
            if "text/event-stream" in r.headers.get("content-type", ""):
                await self._consume_stream(r, state)
            else:
                parse_blocking(result, await self._read(r), app.mode)

    async def _get_run(self, app: AppSettings, run_id: str, result: CallResult) -> None:
        url = f"{app.base_url.rstrip('/')}/workflows/run/{quote(run_id, safe='')}"
        async with self._http.stream("GET", url, headers=_headers(app), timeout=_timeout(app)) as r:
            result.http_status = r.status_code
            if not await self._check_status(r, result, app):
                return
            raw = await self._read(r)
            data = _json_object(raw)
            if data is None:
                raise BadResponse("unparseable JSON answer", raw)
            result.run_created_at = _seconds(data.get("created_at"))
            if data.get("status") == "running":
                result.upstream_status = "running"
                return
            _workflow_data(result, data)

    async def _check_status(self, response: httpx.Response, result: CallResult, app: AppSettings) -> bool:
        """True for a 2xx answer; otherwise classify it into the result."""
        if 200 <= response.status_code < 300:
            return True
        raw = _masked(await _error_page(response), app.api_key)
        kind, message = classify_http_error(response.status_code, raw, response.headers.get("content-type", ""))
        result.fail(kind, one_line(message, app.api_key), response.status_code)
        if kind == "rate_limited":
            result.retry_after = parse_retry_after(response.headers.get("retry-after"))
        return False

    async def _read(self, response: httpx.Response) -> bytes:
        """The whole body, refusing more than the size cap."""
        return b"".join([chunk async for chunk in _capped(response, self.max_response_bytes)])

    async def _consume_stream(self, response: httpx.Response, state: StreamState) -> None:
        # The cap counts what is kept (answer text, the finishing event), not node events streaming past: Dify
        # does not truncate node payloads, so a long-text run streams its text several times over. The stream as a
        # whole may carry STREAM_FACTOR times the cap (an endless stream still ends).
        decoder = SSEDecoder(max_frame=2 * self.max_response_bytes)
        state.max_kept = self.max_response_bytes
        chunks = _capped(response, STREAM_FACTOR * self.max_response_bytes)
        async for chunk in chunks:
            for sse_event, data in decoder.feed(chunk):
                state.handle(sse_event, data)
                if state.done:
                    await _drain(chunks)
                    return
        for sse_event, data in decoder.flush():
            state.handle(sse_event, data)
        if not state.done:
            finish = "workflow_finished" if state.mode == "workflow" else "message_end"
            raise BadResponse(f"stream ended before {finish}")


async def _capped(response: httpx.Response, limit: int) -> AsyncIterator[bytes]:
    """Body chunks, counting bytes as they arrive; more than `limit` is a BadResponse."""
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if seen > limit:
            raise BadResponse(f"answer larger than {limit} bytes")
        yield chunk


async def _error_page(response: httpx.Response, limit: int = 65536) -> bytes:
    """The start of an error answer: enough to read its code and message."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows the finishing event for a moment, so that the connection can be reused."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(0.05):
            async for _ in chunks:
                pass


def _connect_failed(exc: BaseException) -> bool:
    """Whether no connection was made: refused, unreachable, unknown host or no answer to connect."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):  # httpx-aiohttp wraps every aiohttp error in ConnectTimeout
        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError) and not isinstance(
        exc, ConnectionResetError | BrokenPipeError
    )


def _describe(exc: BaseException) -> str:
    """`Type: message` of the most telling exception in the chain (httpx wraps the socket-level one)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 6:
        chain.append(current)
        current = current.__cause__ or current.__context__
    named = [item for item in chain if str(item)]
    low_level = [item for item in named if isinstance(item, aiohttp.ClientError | OSError)]
    shown = (low_level or named or [exc])[0]
    return f"{type(shown).__name__}: {shown}" if str(shown) else type(shown).__name__


def _where(exc: BaseException) -> str:
    """Where an exception was raised: file, line and function of its innermost frame."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__name__
    code = tb.tb_frame.f_code
    return f"{type(exc).__name__} at {code.co_filename}:{tb.tb_lineno} in {code.co_name}"


def _masked(raw: bytes, secret: str) -> bytes:
    """An answer with the secret hidden, before any of it is cut into a message."""
    return raw.replace(secret.encode(), b"***") if len(secret) >= 6 else raw


def _hidden_in(value: Any, secret: str) -> Any:
    """`value` (outputs: JSON) with the secret hidden in every string, keys included."""
    if isinstance(value, str):
        return hide(value, secret) if secret[:SECRET_FRAGMENT] in value else value
    if isinstance(value, list):
        return [_hidden_in(item, secret) for item in value]
    if isinstance(value, dict):
        return {_hidden_in(key, secret): _hidden_in(item, secret) for key, item in value.items()}
    return value


def _headers(app: AppSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.api_key}", "Content-Type": "application/json"}


def _timeout(app: AppSettings) -> httpx.Timeout:
    """A blocking answer is silent until the run ends: only the call's own limit applies. A stream pings every
    10 s, so a longer silence means it is dead; pings do not extend the call past its limit (`_guarded`). Connect
    gives up before the whole call, so a silent port ends like a refused one (CONNECT_FAILED)."""
    total = app.timeout
    read = total if app.response_mode == "blocking" else min(total, app.silence_timeout)
    return httpx.Timeout(connect=min(10.0, total * 0.9), read=read, write=10.0, pool=total)


def agent_refuses_blocking(app: AppSettings, result: CallResult) -> bool:
    return (
        app.mode == "chat" and app.response_mode == "blocking" and result.http_status == 400
        and "does not support blocking mode" in result.error
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- parameters


def fetch_parameters(app: AppSettings, timeout: float = 5) -> list[InputVariable] | None:
    """The app's input variables, or None when they cannot be read (the importer then skips the check)."""
    if is_unreadable(app.api_key):
        return None
    try:
        upstream_hosts.check_url(app.base_url)
        raw = _get_small(app.base_url.rstrip("/") + "/parameters", _headers(app), timeout)
    except (httpx.HTTPError, BadResponse, UpstreamRefused, ConnectionError) as exc:
        logger.info("GET /parameters failed: %s", one_line(repr(exc), app.api_key))
        return None
    form = _mapping(_json_value(raw)).get("user_input_form") if raw is not None else None
    return parse_input_form(form) if isinstance(form, list) else None


def _get_small(url: str, headers: dict[str, str], timeout: float) -> bytes | None:
    """The body of a 200 answer (None for another status), refused past MAX_PARAMETERS_BYTES or ~`timeout` s."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=timeout, follow_redirects=False) as http, http.stream("GET", url, headers=headers) as r:
        if r.status_code != 200:
            logger.info("GET /parameters answered HTTP %s", r.status_code)
            return None
        body = bytearray()
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) > MAX_PARAMETERS_BYTES or time.monotonic() > deadline:
                raise BadResponse("answer too large or too slow")
    return bytes(body)


def parse_input_form(form: list[Any]) -> list[InputVariable]:
    """Every `{type: {variable, label, ...}}` item of a `user_input_form`, whatever the type."""
    variables = []
    for item in form:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        kind, spec = next(iter(item.items()))
        if isinstance(spec, dict) and spec.get("variable"):
            variables.append(_input_variable(str(kind), spec))
    return variables


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _input_variable(kind: str, spec: dict[str, Any]) -> InputVariable:
    return InputVariable(
        variable=str(spec["variable"]),
        label=str(spec.get("label") or spec["variable"]),
        required=bool(spec.get("required", False)),
        type=kind,
        options=tuple(str(option) for option in _list(spec.get("options"))),
        max_length=_int_or_none(spec.get("max_length")),
        default=spec.get("default"),
    )
