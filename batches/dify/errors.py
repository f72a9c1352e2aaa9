"""Which error type a Dify error means: by HTTP status, by Dify's error code and, where Dify reuses one code for
transient and permanent failures, by what the message says (README "Error classification").

The same rules serve an HTTP error answer, an in-stream `error` event (same codes and statuses) and a failed
run's `data.error`, so a failure is classified alike however it arrives.
"""

from __future__ import annotations

import email.utils
import re
import time

import aiohttp
import httpx

from batches.choices import ErrorType
from batches.db import strictjson
from batches.dify.hosts import CONNECT_FAILED
from batches.dify.redact import one_line
from batches.dify.types import BadResponse

# Codes that mean the app itself is unusable: every row would fail alike (the batch pauses).
APP_ERROR_CODES = frozenset({
    "app_unavailable", "not_workflow_app", "not_chat_app", "not_completion_app", "provider_not_initialize",
    "provider_quota_exceeded", "model_currently_not_support",
})  # fmt: skip
# Codes of a failed model call or run.
FAILED_CODES = frozenset({"completion_request_error", "workflow_request_error"})

# Dify's app concurrency cap (`max_active_requests`): a ValueError, so 400 invalid_param, never 429.
CONCURRENCY_CAP = re.compile(r"^\s*Too many requests\b", re.I)
# 400 invalid_param answers that are about the app, not the row.
APP_UNUSABLE = re.compile(
    r"does not support blocking mode|workflow not (?:published|initialized)|app model config (?:is )?broken"
    r"|app is disabled|not (?:a )?(?:workflow|chat|completion) app",
    re.I,
)
# A chatflow that failed, in blocking mode: 400 invalid_param "Run failed: <the run's error>".
RUN_FAILED = re.compile(r"^\s*Run failed:\s*", re.I)
# A model provider's failure wrapped by Dify (plugin invoke errors, provider SDK messages).
PROVIDER_FAILURE = re.compile(
    r"PluginInvokeError|PluginDaemon|Invoke\w*Error|\[(?:\w|-)+\] \w[\w ]*Error|Error code: \d{3}|provider",
    re.I,
)
QUOTA = re.compile(r"quota|billing|insufficient[_ ]balance|credit balance", re.I)
AUTH = re.compile(
    r"InvokeAuthorizationError|AuthenticationError|PermissionDenied|credentials|api[_ -]?key|Unauthorized"
    r"|Error code: 40[13]\b",
    re.I,
)
RATE_LIMIT = re.compile(r"InvokeRateLimitError|rate[_ ]?limit|too many requests|Error code: 429\b|\b429\b", re.I)
TRANSIENT = re.compile(
    r"InvokeServerUnavailableError|InvokeConnectionError|timed? ?out|timeout|overloaded|unavailable"
    r"|connection|Error code: 5\d\d\b|\b50[0234]\b|internal server error|bad gateway|try again",
    re.I,
)


def classify(status: int, code: str, message: str) -> str:
    """The error type of a Dify error answer (HTTP status, `code`, `message`)."""
    if 300 <= status < 400:
        return ErrorType.BAD_RESPONSE
    if status == 429:
        return ErrorType.RATE_LIMITED
    if status in (401, 403):
        return ErrorType.AUTH
    if status == 408:
        return ErrorType.TIMEOUT
    if status >= 500:
        return ErrorType.UPSTREAM_ERROR
    if status == 404 or code in APP_ERROR_CODES:
        return ErrorType.APP_ERROR
    if code in FAILED_CODES:
        return classify_run_error(message)
    if 400 <= status < 500:
        return _classify_400(message)
    return ErrorType.BAD_RESPONSE


def _classify_400(message: str) -> str:
    if CONCURRENCY_CAP.search(message):
        return ErrorType.RATE_LIMITED
    if APP_UNUSABLE.search(message):
        return ErrorType.APP_ERROR
    if RUN_FAILED.search(message):
        return classify_run_error(RUN_FAILED.sub("", message, count=1))
    if PROVIDER_FAILURE.search(message):
        return _provider_failure(message) or ErrorType.WORKFLOW_FAILED
    return ErrorType.INVALID_INPUT


def classify_run_error(message: str) -> str:
    """A failed run's or model call's error text: the provider's own verdict where it says one."""
    return _provider_failure(message) or ErrorType.WORKFLOW_FAILED


def _provider_failure(message: str) -> str:
    """rate_limited, app_error (quota, credentials), workflow_failed (transient), or "" when it says none."""
    if QUOTA.search(message):
        return ErrorType.APP_ERROR
    if RATE_LIMIT.search(message):
        return ErrorType.RATE_LIMITED
    if AUTH.search(message):
        return ErrorType.APP_ERROR
    if TRANSIENT.search(message):
        return ErrorType.WORKFLOW_FAILED
    return ""


DIFY_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # Dify's error codes: invalid_param, app_unavailable, ...


def _error_body(body: bytes | str, content_type: str, status: int) -> tuple[str, str, bool]:
    """(code, message, shown) of a JSON error body. Only Dify's own shape ({"code", "message", "status"}, the
    status the answer's) has its message shown; a code that is not an identifier is dropped. Another answer's
    text is never quoted: it could map an internal service."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    data = strictjson.object_of(text) if "json" in content_type or text.lstrip().startswith("{") else None
    if data is None:
        return "", "", False
    code = data.get("code")
    code = code if isinstance(code, str) and DIFY_CODE.fullmatch(code) else ""
    message = data.get("message")
    message = message if isinstance(message, str) else ""
    return code, message, bool(code and message) and data.get("status") == status


def classify_http_error(status: int, body: bytes | str, content_type: str) -> tuple[str, str]:
    """Map a non-2xx answer to (error_type, one-line message)."""
    code, message, shown = _error_body(body, content_type, status)
    if shown:
        detail = f": {message}" if message.strip() else ""
    else:  # classified by what it says, never quoted
        detail = ": not a Dify answer" if (body.strip() if isinstance(body, str | bytes) else body) else ""
    text = one_line(f"HTTP {status}" + (f" {code}" if code else "") + detail)
    kind = classify(status, code, message)
    return kind, text + " (redirect)" if 300 <= status < 400 else text


def classify_exception(exc: BaseException) -> str:
    """Error type for an exception raised while talking to the upstream."""
    # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout: judge by the original instead.
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError | OSError) else exc
    if isinstance(cause, BadResponse | aiohttp.ClientResponseError):  # the latter: a malformed answer (headers)
        return ErrorType.BAD_RESPONSE
    if isinstance(cause, TimeoutError | httpx.TimeoutException):
        return ErrorType.TIMEOUT
    if isinstance(
        cause, httpx.UnsupportedProtocol | httpx.InvalidURL | aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError
    ):
        return ErrorType.APP_ERROR
    if isinstance(cause, httpx.TransportError | aiohttp.ClientError | OSError):
        return ErrorType.CONNECTION
    return ErrorType.BAD_RESPONSE


def connect_failed(exc: BaseException) -> bool:
    """Whether no connection was made: refused, unreachable, unknown host or no answer to connect."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):  # httpx-aiohttp wraps every aiohttp error in ConnectTimeout
        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | ConnectionError)


MALFORMED = "not a Dify answer (malformed HTTP)"
NO_ANSWER = "the upstream did not answer in time"
NOT_HTTP = re.compile(r"status line", re.I)  # aiohttp's "Bad status line", h11's "illegal status line"


def public_failure(exc: BaseException) -> tuple[str, str]:
    """(error type, one line) of an exception raised while talking to the upstream, for pages and exports.

    Whatever failed on the way (refused, reset, closed, a port that does not speak HTTP, no answer to connect)
    reads the same, so no error maps which ports are open; a malformed HTTP answer is never quoted.
    """
    kind = classify_exception(exc)
    if kind == ErrorType.CONNECTION or connect_failed(exc) or _chain_says(exc, NOT_HTTP):
        return ErrorType.CONNECTION, CONNECT_FAILED
    if kind == ErrorType.TIMEOUT:
        return kind, NO_ANSWER
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    if kind == ErrorType.BAD_RESPONSE and isinstance(cause, aiohttp.ClientResponseError | httpx.ProtocolError):
        return kind, MALFORMED
    return kind, describe(exc)


def _chain_says(exc: BaseException, pattern: re.Pattern[str]) -> bool:
    current: BaseException | None = exc
    for _ in range(6):
        if current is None:
            return False
        if pattern.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException) -> str:
    """`Type: message` of the most telling exception in the chain (httpx wraps the socket-level one)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 6:
        chain.append(current)
        current = current.__cause__ or current.__context__
    named = [item for item in chain if str(item)]
    low_level = [item for item in named if isinstance(item, aiohttp.ClientError | OSError)]
    # anyio sums up a refused connect as "All connection attempts failed": the errno-carrying cause says more.
    precise = [item for item in low_level if getattr(item, "errno", None)]
    shown = (precise or low_level or named or [exc])[0]
    return f"{type(shown).__name__}: {shown}" if str(shown) else type(shown).__name__


def where(exc: BaseException) -> str:
    """Where an exception was raised: file, line and function of its innermost frame."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__name__
    code = tb.tb_frame.f_code
    return f"{type(exc).__name__} at {code.co_filename}:{tb.tb_lineno} in {code.co_name}"


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
